// Package dbtest opens real, migrated databases for tests: a SQLite file in the test's temporary
// directory, or a fresh schema in the PostgreSQL server named by TEST_DATABASE_URL.
//
// Without TEST_DATABASE_URL the PostgreSQL tests skip, unless REQUIRE_POSTGRES=1 (set by `make test` and
// CI), in which case they fail: CI must never pass by skipping them.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
)

// Config returns a test-sized configuration for dialect; PostgreSQL gets a schema of its own.
func Config(t testing.TB, dialect db.Dialect) db.Config {
	t.Helper()
	c := db.Config{
		Dialect:           dialect,
		SQLiteCacheSize:   -16000,
		SQLiteBusyTimeout: 5 * time.Second,
		SQLiteReadConns:   4,
		PoolSize:          2,
		MaxOverflow:       8,
		PoolTimeout:       10 * time.Second,
		PoolRecycle:       time.Hour,
	}
	switch dialect {
	case db.SQLite:
		c.SQLitePath = filepath.Join(t.TempDir(), "test.db")
	case db.Postgres:
		c.PostgresURL = PostgresURL(t)
		c.Schema = NewSchema(t, c.PostgresURL)
	}
	return c
}

// Open returns a migrated database for service, closed when the test ends.
func Open(t testing.TB, dialect db.Dialect, service string) *db.Handle {
	t.Helper()
	h, err := db.Open(context.Background(), Config(t, dialect), service, true)
	if err != nil {
		t.Fatalf("open %s database: %v", dialect, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// PostgresURL returns TEST_DATABASE_URL, skipping (or failing under REQUIRE_POSTGRES=1) without it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatal("TEST_DATABASE_URL is not set but REQUIRE_POSTGRES=1: PostgreSQL tests must run")
		}
		t.Skip("TEST_DATABASE_URL not set; skipping PostgreSQL test (make test starts a server)")
	}
	return u
}

// NewSchema returns the name of a schema unique to this test, dropped with its contents at cleanup.
func NewSchema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// Dialects lists the backends every conformance suite runs against.
var Dialects = []db.Dialect{db.SQLite, db.Postgres}
