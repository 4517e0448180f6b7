package postgres_test

import (
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/storetest"
)

func TestAuditOutboxConformance(t *testing.T) {
	storetest.RunAuditOutbox(t, func(t *testing.T) storetest.OutboxBackend {
		st := postgres.New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
		return storetest.OutboxBackend{Store: st, Driver: st.D}
	})
}
