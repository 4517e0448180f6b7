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

// benchRead measures one read of a stored connection from parallel goroutines.
func benchRead(b *testing.B, read func(store.Store, context.Context, store.Key) (*store.Connection, error)) {
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
			if _, err := read(s, ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConnectionGet reads the full row (refreshes, admin RPCs).
func BenchmarkConnectionGet(b *testing.B) { benchRead(b, store.Store.ConnectionGet) }

// BenchmarkAccessTokenGet is the lean read GetAccessToken uses.
func BenchmarkAccessTokenGet(b *testing.B) { benchRead(b, store.Store.AccessTokenGet) }
