package sqlite_test

import (
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/sqlite"
	"github.com/sergas/core/services/webhook/storetest"
)

func TestBatchConformance(t *testing.T) {
	storetest.RunBatch(t, func(t *testing.T) store.Store {
		return sqlite.New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	})
}
