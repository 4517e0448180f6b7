package sqlite_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/sqlite"
	"github.com/sergas/core/services/webhook/storetest"
)

func TestBacklogConformance(t *testing.T) {
	storetest.RunBacklog(t, func(t *testing.T) (store.Store, func(string)) {
		h := dbtest.Open(t, db.SQLite, "webhook")
		return sqlite.New(h.SQLite), func(q string) {
			if err := h.SQLite.WriteTx(context.Background(), func(tx *sql.Tx) error { _, err := tx.Exec(q); return err }); err != nil {
				t.Fatal(err)
			}
		}
	})
}
