package postgres_test

import (
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return postgres.New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	})
}

func TestChannelConformance(t *testing.T) {
	storetest.RunChannels(t, func(t *testing.T) store.ChannelStore {
		return postgres.New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	})
}

func TestDeliveryConformance(t *testing.T) {
	storetest.RunDeliveries(t, func(t *testing.T) storetest.DeliveryBackend {
		return postgres.New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	})
}
