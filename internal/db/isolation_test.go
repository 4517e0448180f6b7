package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// A server (or role) whose default isolation is SERIALIZABLE must not change the level of the stores'
// transactions: Tx sets READ COMMITTED itself, and TxWith the level asked for.
func TestTxSetsIsolationExplicitly(t *testing.T) {
	ctx := context.Background()
	cfg := dbtest.Config(t, db.Postgres)
	sep := "?"
	if strings.Contains(cfg.PostgresURL, "?") {
		sep = "&"
	}
	cfg.PostgresURL += sep + "default_transaction_isolation=serializable"
	p, err := db.OpenPostgres(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	level := func(run func(fn func(pgx.Tx) error) error) string {
		var got string
		if err := run(func(tx pgx.Tx) error { return tx.QueryRow(ctx, "SHOW transaction_isolation").Scan(&got) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Precondition: the server default really is SERIALIZABLE for this pool.
	var def string
	if err := p.Pool.QueryRow(ctx, "SHOW default_transaction_isolation").Scan(&def); err != nil || def != "serializable" {
		t.Fatalf("default isolation %q (%v); the test needs serializable", def, err)
	}
	if got := level(func(fn func(pgx.Tx) error) error { return p.Tx(ctx, fn) }); got != "read committed" {
		t.Errorf("Tx isolation %q, want read committed", got)
	}
	if got := level(func(fn func(pgx.Tx) error) error {
		return p.TxWith(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, fn)
	}); got != "repeatable read" {
		t.Errorf("TxWith(RepeatableRead) isolation %q", got)
	}
}
