package sqlite_test

import (
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store/sqlite"
	"github.com/sergas/core/services/webhook/storetest"
)

func TestAuditOutboxConformance(t *testing.T) {
	storetest.RunAuditOutbox(t, func(t *testing.T) storetest.OutboxBackend {
		st := sqlite.New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
		return storetest.OutboxBackend{Store: st, Driver: st.D}
	})
}
