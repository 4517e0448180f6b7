package postgres_test

import (
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/storetest"
)

// BenchmarkFanOut: see storetest.BenchFanOut.
func BenchmarkFanOut(b *testing.B) {
	storetest.BenchFanOut(b, func(b *testing.B) store.Store { return postgres.New(dbtest.Open(b, db.Postgres, "webhook").Postgres) })
}

// BenchmarkClaimAck: see storetest.BenchClaimAck.
func BenchmarkClaimAck(b *testing.B) {
	storetest.BenchClaimAck(b, func(b *testing.B) store.Store { return postgres.New(dbtest.Open(b, db.Postgres, "webhook").Postgres) })
}
