package sqlite_test

import (
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return sqlite.New(dbtest.Open(t, db.SQLite, "audit").SQLite)
	})
}

func TestEventsAreAppendOnly(t *testing.T) {
	h := dbtest.Open(t, db.SQLite, "audit")
	s := sqlite.New(h.SQLite)
	if _, _, err := s.EventAppend(t.Context(), storetest.NewEvent("a", "b", time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE events SET actor = 'forged'", "DELETE FROM events"} {
		if _, err := h.SQLite.Write.ExecContext(t.Context(), q); err == nil {
			t.Errorf("%q succeeded on the append-only log", q)
		}
	}
}
