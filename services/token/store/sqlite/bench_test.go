package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/store/sqlite"
	"github.com/sergas/core/services/token/storetest"
)

// benchRead measures one read of a stored connection from parallel goroutines (or one, serial), with
// a cancellable context like a gRPC handler's.
func benchRead(b *testing.B, read func(store.Store, context.Context, store.Key) (*store.Connection, error), serial bool) {
	s := sqlite.New(dbtest.Open(b, db.SQLite, "token").SQLite)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := storetest.Conn("zoho", "org-1", time.Now().UTC().Truncate(time.Microsecond), time.Hour)
	if _, err := s.ConnectionPut(ctx, c, nil); err != nil {
		b.Fatal(err)
	}
	k := store.Key{Provider: "zoho", ConnectionID: "org-1"}
	b.ReportAllocs()
	if serial {
		for b.Loop() {
			if _, err := read(s, ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := read(s, ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConnectionGet reads the full row (refreshes, admin RPCs).
func BenchmarkConnectionGet(b *testing.B) { benchRead(b, store.Store.ConnectionGet, false) }

// BenchmarkAccessTokenGet is the lean read GetAccessToken uses.
func BenchmarkAccessTokenGet(b *testing.B) { benchRead(b, store.Store.AccessTokenGet, false) }

// BenchmarkAccessTokenGetOneCaller is the lean read from a single caller: the counterpart of the
// original system's token lookup (0.15 ms on SQLite, no RPC, no cache).
func BenchmarkAccessTokenGetOneCaller(b *testing.B) { benchRead(b, store.Store.AccessTokenGet, true) }

// TestAccessTokenGetPreparedReadsStayFresh: the lean read keeps its statement prepared on every pooled
// reader connection; a write between reads must still be seen by each of them, and a deleted row must
// read as not found, however many connections the pool has opened.
func TestAccessTokenGetPreparedReadsStayFresh(t *testing.T) {
	s := sqlite.New(dbtest.Open(t, db.SQLite, "token").SQLite)
	ctx := context.Background()
	k := store.Key{Provider: "zoho", ConnectionID: "org-1"}
	for round := range 3 {
		c := storetest.Conn("zoho", "org-1", time.Now().UTC().Truncate(time.Microsecond), time.Hour)
		c.AccessToken = []byte(fmt.Sprintf("sealed-%d", round))
		if _, err := s.ConnectionPut(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		// Parallel readers make the pool open (and prepare the statement on) several connections.
		errc := make(chan error, 8)
		for range 8 {
			go func() {
				got, err := s.AccessTokenGet(ctx, k)
				if err == nil && string(got.AccessToken) != string(c.AccessToken) {
					err = fmt.Errorf("round %d read %q", round, got.AccessToken)
				}
				errc <- err
			}()
		}
		for range 8 {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.ConnectionDelete(ctx, k, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccessTokenGet(ctx, k); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
}

// TestAccessTokenGetCancelled: the lean read runs detached from the caller's context (so that
// database/sql does not start a goroutine per query to watch it); a call already cancelled still does
// not read.
func TestAccessTokenGetCancelled(t *testing.T) {
	s := sqlite.New(dbtest.Open(t, db.SQLite, "token").SQLite)
	c := storetest.Conn("zoho", "org-1", time.Now().UTC().Truncate(time.Microsecond), time.Hour)
	if _, err := s.ConnectionPut(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := s.AccessTokenGet(ctx, store.Key{Provider: "zoho", ConnectionID: "org-1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %+v, %v", got, err)
	}
}
