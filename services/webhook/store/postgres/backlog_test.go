package postgres_test

import (
	"context"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/storetest"
)

func TestBacklogConformance(t *testing.T) {
	storetest.RunBacklog(t, func(t *testing.T) (store.Store, func(string)) {
		h := dbtest.Open(t, db.Postgres, "webhook")
		return postgres.New(h.Postgres), func(q string) {
			if _, err := h.Postgres.Pool.Exec(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
	})
}
