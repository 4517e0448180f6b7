// Package migrate applies versioned, embedded SQL migrations, each in its own transaction, and records
// them in schema_migrations. It works on any database/sql handle; PostgreSQL pools are adapted with
// pgx's stdlib package.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	Up      string
}

// Load reads NNNN_name.up.sql files from fsys (down files are kept beside them for operators and are not
// run automatically). Versions must be unique and start at 1 without gaps.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".up.sql") {
			continue
		}
		base := strings.TrimSuffix(name, ".up.sql")
		num, label, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.up.sql", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: label, Up: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions must run 1..n without gaps; found %d at position %d", m.Version, i+1)
		}
	}
	return ms, nil
}

// Dialect holds what differs between backends.
type Dialect struct {
	// Lock, when set, runs first in every migration transaction to serialise replicas (PostgreSQL
	// advisory lock). SQLite needs none: its write transactions are already exclusive.
	Lock string
}

// SQLite and Postgres are the two dialects.
var (
	SQLite   = Dialect{}
	Postgres = Dialect{Lock: "SELECT pg_advisory_xact_lock(hashtext('sergas.migrate.' || current_schema()))"}
)

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL
)`

// Version returns the highest applied version (0 when none).
func Version(ctx context.Context, db *sql.DB, d Dialect) (int, error) {
	var v int
	err := inTx(ctx, db, d, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v)
	})
	return v, err
}

// Up applies every migration not yet applied and returns how many it applied. It refuses to touch a
// schema newer than the newest migration it knows.
func Up(ctx context.Context, db *sql.DB, d Dialect, ms []Migration) (int, error) {
	applied := 0
	for _, m := range ms {
		err := inTx(ctx, db, d, func(tx *sql.Tx) error {
			var cur int
			if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
				return err
			}
			if cur > len(ms) {
				return newerError(cur, len(ms))
			}
			if cur >= m.Version {
				return nil // applied earlier, possibly by another replica
			}
			if _, err := tx.ExecContext(ctx, m.Up); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
				m.Version, m.Name, time.Now().UnixMicro()); err != nil {
				return err
			}
			applied++
			return nil
		})
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// Check fails unless the schema is exactly at the newest known version.
func Check(ctx context.Context, db *sql.DB, d Dialect, ms []Migration) error {
	v, err := Version(ctx, db, d)
	if err != nil {
		return err
	}
	switch {
	case v > len(ms):
		return newerError(v, len(ms))
	case v < len(ms):
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run migrations (MIGRATE_ON_START=true or sergasctl migrate)", v, len(ms))
	}
	return nil
}

func newerError(have, know int) error {
	return fmt.Errorf("database schema is at version %d, newer than this binary knows (%d): upgrade the binary", have, know)
}

func inTx(ctx context.Context, db *sql.DB, d Dialect, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if d.Lock != "" {
		if _, err := tx.ExecContext(ctx, d.Lock); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, createTable); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Sub returns the migrations of one service and dialect from the embedded tree.
func Sub(fsys fs.FS, service, dialect string) (fs.FS, error) {
	return fs.Sub(fsys, path.Join(service, dialect))
}
