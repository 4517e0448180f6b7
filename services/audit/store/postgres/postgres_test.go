package postgres_test

import (
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
