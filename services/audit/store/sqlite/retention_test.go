package sqlite_test

import (
	"context"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

func TestRetentionGuards(t *testing.T) {
	h := dbtest.Open(t, db.SQLite, "audit")
	storetest.Guards(t, sqlite.New(h.SQLite), func(ctx context.Context, q string, args ...any) error {
		_, err := h.SQLite.Write.ExecContext(ctx, q, args...)
		return err
	}, true)
}

func TestRetentionStopsAtAGap(t *testing.T) {
	h := dbtest.Open(t, db.SQLite, "audit")
	storetest.GapStopsRetention(t, sqlite.New(h.SQLite), func(ctx context.Context, q string, args ...any) error {
		_, err := h.SQLite.Write.ExecContext(ctx, q, args...)
		return err
	}, true, "DROP TRIGGER events_no_delete")
}
