package db_test

import (
	"context"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// TestSQLiteWriterCheckpointsEvery10000Pages: the writer, the only connection that commits, runs its
// automatic checkpoint every 10,000 WAL pages instead of SQLite's 1,000 (see OpenSQLite); the file is
// still in WAL mode.
func TestSQLiteWriterCheckpointsEvery10000Pages(t *testing.T) {
	ctx := context.Background()
	h, err := db.OpenSQLite(ctx, dbtest.Config(t, db.SQLite))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var pages int
	var mode string
	if err := h.Write.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := h.Write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if pages != 10000 || mode != "wal" {
		t.Fatalf("writer: wal_autocheckpoint %d, journal_mode %s", pages, mode)
	}
}
