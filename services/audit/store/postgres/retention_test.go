package postgres_test

import (
	"context"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/storetest"
)

func TestRetentionGuards(t *testing.T) {
	h := dbtest.Open(t, db.Postgres, "audit")
	storetest.Guards(t, postgres.New(h.Postgres), func(ctx context.Context, q string, args ...any) error {
		_, err := h.Postgres.Pool.Exec(ctx, q, args...)
		return err
	}, false)
}

func TestRetentionStopsAtAGap(t *testing.T) {
	h := dbtest.Open(t, db.Postgres, "audit")
	storetest.GapStopsRetention(t, postgres.New(h.Postgres), func(ctx context.Context, q string, args ...any) error {
		_, err := h.Postgres.Pool.Exec(ctx, q, args...)
		return err
	}, false, "ALTER TABLE events DISABLE TRIGGER events_no_delete")
}
