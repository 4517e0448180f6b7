package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return postgres.New(dbtest.Open(t, db.Postgres, "audit").Postgres)
	})
}

func TestEventsAreAppendOnly(t *testing.T) {
	h := dbtest.Open(t, db.Postgres, "audit")
	s := postgres.New(h.Postgres)
	if _, _, err := s.EventAppend(t.Context(), storetest.NewEvent("a", "b", time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE events SET actor = 'forged'", "DELETE FROM events"} {
		if _, err := h.Postgres.Pool.Exec(t.Context(), q); err == nil {
			t.Errorf("%q succeeded on the append-only log", q)
		}
	}
}

// TestAppendsDoNotInheritTheServersIsolation: on a server (or role) whose default isolation is
// SERIALIZABLE, concurrent appends from two replicas still all succeed and make one chain: the append
// names READ COMMITTED, under which a transaction that waited for the head's lock reads the new head
// instead of failing with a serialization error.
func TestAppendsDoNotInheritTheServersIsolation(t *testing.T) {
	ctx := context.Background()
	cfg := dbtest.Config(t, db.Postgres)
	sep := "?"
	if strings.Contains(cfg.PostgresURL, "?") {
		sep = "&"
	}
	cfg.PostgresURL += sep + "default_transaction_isolation=serializable"
	var replicas []store.Store
	for range 2 {
		h, err := db.Open(ctx, cfg, "audit", true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		var def string
		if err := h.Postgres.Pool.QueryRow(ctx, "SHOW default_transaction_isolation").Scan(&def); err != nil || def != "serializable" {
			t.Fatalf("default isolation %q (%v); the test needs serializable", def, err)
		}
		replicas = append(replicas, postgres.New(h.Postgres))
	}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errc := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := storetest.NewEvent("shared", "c", time.Now())
				e.IdempotencyKey = fmt.Sprintf("k-%d-%d", w%2, i) // four workers per key, on both replicas
				if _, _, err := replicas[(w/2)%2].EventAppend(ctx, e); err != nil {
					errc <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	es, err := replicas[0].EventList(ctx, store.EventListParams{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2*each {
		t.Fatalf("%d events, want %d", len(es), 2*each)
	}
	storetest.VerifyChain(t, es)
}
