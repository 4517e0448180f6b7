package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/store/sqlite"
	"github.com/sergas/core/services/token/storetest"
)

// BenchmarkConnectionGet is the store half of GetAccessToken's uncached path: one point read.
func BenchmarkConnectionGet(b *testing.B) {
	s := sqlite.New(dbtest.Open(b, db.SQLite, "token").SQLite)
	ctx := context.Background()
	c := storetest.Conn("zoho", "org-1", time.Now().UTC().Truncate(time.Microsecond), time.Hour)
	if _, err := s.ConnectionPut(ctx, c, nil); err != nil {
		b.Fatal(err)
	}
	k := store.Key{Provider: "zoho", ConnectionID: "org-1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.ConnectionGet(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAccessTokenGet is the lean read GetAccessToken uses.
func BenchmarkAccessTokenGet(b *testing.B) {
	s := sqlite.New(dbtest.Open(b, db.SQLite, "token").SQLite)
	ctx := context.Background()
	c := storetest.Conn("zoho", "org-1", time.Now().UTC().Truncate(time.Microsecond), time.Hour)
	if _, err := s.ConnectionPut(ctx, c, nil); err != nil {
		b.Fatal(err)
	}
	k := store.Key{Provider: "zoho", ConnectionID: "org-1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.AccessTokenGet(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}
