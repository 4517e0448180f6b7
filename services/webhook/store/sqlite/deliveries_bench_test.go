package sqlite_test

import (
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/sqlite"
	"github.com/sergas/core/services/webhook/storetest"
)

// BenchmarkFanOut: see storetest.BenchFanOut.
func BenchmarkFanOut(b *testing.B) {
	storetest.BenchFanOut(b, func(b *testing.B) store.Store { return sqlite.New(dbtest.Open(b, db.SQLite, "webhook").SQLite) })
}

// BenchmarkClaimAck: see storetest.BenchClaimAck.
func BenchmarkClaimAck(b *testing.B) {
	storetest.BenchClaimAck(b, func(b *testing.B) store.Store { return sqlite.New(dbtest.Open(b, db.SQLite, "webhook").SQLite) })
}
