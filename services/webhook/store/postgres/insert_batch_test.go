package postgres_test

import (
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/storetest"
)

func TestBatchConformance(t *testing.T) {
	storetest.RunBatch(t, func(t *testing.T) store.Store {
		return postgres.New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	})
}
