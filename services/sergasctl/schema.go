package sergasctl

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
)

// The expected tables, columns and indexes are never listed by hand: they are what this binary's
// migrations make. validate applies them to a scratch database of the same dialect (SQLite in memory; on
// PostgreSQL a scratch schema inside a transaction that is rolled back, so nothing is left behind) and
// compares the service's database object by object.

// schemaObject is one table, column or index, with a definition comparable across databases.
type schemaObject struct {
	Kind, Name, Def string
}

// schemaObjects maps "kind name" to the object.
type schemaObjects map[string]schemaObject

func (o schemaObjects) add(kind, name, def string) { o[kind+" "+name] = schemaObject{kind, name, def} }

// schemaDiff lists what the live database lacks or holds differently from the reference. Extra objects
// (an index an operator added) are reported apart: they do no harm to the services.
func schemaDiff(want, have schemaObjects) (missing, differ, extra []string) {
	for k, w := range want {
		h, ok := have[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case h.Def != w.Def:
			differ = append(differ, fmt.Sprintf("%s (is %q, migrations make %q)", k, h.Def, w.Def))
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(differ)
	sort.Strings(extra)
	return missing, differ, extra
}

// The migrations table is made by internal/migrate, not by a migration.
const sqliteObjectsQuery = `SELECT type, name, coalesce(sql, '') FROM sqlite_master
	WHERE type IN ('table', 'index', 'trigger', 'view') AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'`

func sqliteObjects(ctx context.Context, q *sql.DB) (schemaObjects, error) {
	rows, err := q.QueryContext(ctx, sqliteObjectsQuery)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := schemaObjects{}
	for rows.Next() {
		var kind, name, def string
		if err := rows.Scan(&kind, &name, &def); err != nil {
			return nil, err
		}
		out.add(kind, name, strings.Join(strings.Fields(def), " "))
	}
	return out, rows.Err()
}

// sqliteReference applies ms to an in-memory SQLite database and reads its objects.
func sqliteReference(ctx context.Context, ms []migrate.Migration) (schemaObjects, error) {
	ref, err := sql.Open("sqlite3", "file::memory:?_pragma=foreign_keys(on)")
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	ref.SetMaxOpenConns(1) // one connection: an in-memory database lives in its connection
	if _, err := migrate.Up(ctx, ref, migrate.SQLite, ms); err != nil {
		return nil, fmt.Errorf("apply migrations to the reference: %w", err)
	}
	return sqliteObjects(ctx, ref)
}

// pgObjectsQuery lists the tables, columns and indexes of schema $1. Definitions name the schema; the
// caller replaces it so that two schemas compare.
const pgObjectsQuery = `
SELECT 'table', tablename, '' FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations'
UNION ALL
SELECT 'column', table_name || '.' || column_name, data_type || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END
	FROM information_schema.columns WHERE table_schema = $1 AND table_name <> 'schema_migrations'
UNION ALL
SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename <> 'schema_migrations'`

func pgObjects(ctx context.Context, tx pgx.Tx, schema string) (schemaObjects, error) {
	rows, err := tx.Query(ctx, pgObjectsQuery, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := schemaObjects{}
	for rows.Next() {
		var kind, name, def string
		if err := rows.Scan(&kind, &name, &def); err != nil {
			return nil, err
		}
		out.add(kind, name, strings.ReplaceAll(def, " "+schema+".", " "))
	}
	return out, rows.Err()
}

// pgSchemas reads the live schema's objects and, in a transaction that is always rolled back, those
// that ms make in a scratch schema.
func pgSchemas(ctx context.Context, p *db.PostgresDB, schema string, ms []migrate.Migration) (want, have schemaObjects, err error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	scratch := "sergasctl_ref_" + hex.EncodeToString(b[:])
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer c.Release()
	tx, err := c.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the scratch schema must never be committed
	if have, err = pgObjects(ctx, tx, schema); err != nil {
		return nil, nil, err
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA "+scratch); err != nil {
		return nil, nil, fmt.Errorf("create a scratch schema for the reference (needs CREATE on the database): %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+scratch); err != nil {
		return nil, nil, err
	}
	for _, m := range ms {
		if _, err := tx.Exec(ctx, m.Up); err != nil {
			return nil, nil, fmt.Errorf("apply migration %04d_%s to the reference: %w", m.Version, m.Name, err)
		}
	}
	if want, err = pgObjects(ctx, tx, scratch); err != nil {
		return nil, nil, err
	}
	return want, have, nil
}

// expectedSchema compares the service's database with what its migrations make.
// version is the database's schema version: it is compared with what the migrations up to it make, so
// that a database behind the binary is reported once, by the version check, and not again here.
func expectedSchema(ctx context.Context, cn *conn, version int) (missing, differ, extra []string, err error) {
	ms, _, _, err := cn.migrations()
	if err != nil {
		return nil, nil, nil, err
	}
	ms = ms[:min(max(version, 0), len(ms))]
	var want, have schemaObjects
	if cn.SQLite != nil {
		if want, err = sqliteReference(ctx, ms); err == nil {
			have, err = sqliteObjects(ctx, cn.SQLite.Read)
		}
	} else {
		want, have, err = pgSchemas(ctx, cn.PG, cn.t.DB.Schema, ms)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if len(want) == 0 && len(ms) > 0 {
		return nil, nil, nil, errors.New("the migrations made no objects")
	}
	missing, differ, extra = schemaDiff(want, have)
	return missing, differ, extra, nil
}
