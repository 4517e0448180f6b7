package dbtest

import (
	"context"
	"database/sql"
	"io/fs"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/migrations"
)

// Old is a database as an older binary left it: migrated to only the first migrations of a service.
type Old struct {
	// Handle is the opened database (SQLite writer and readers, or the PostgreSQL pool).
	Handle *db.Handle
	// SQL reaches it through database/sql, to write rows the way the older schema held them.
	SQL *sql.DB
	// Dialect is the migration dialect, for migrate.Up.
	Dialect migrate.Dialect
	all     []migrate.Migration
}

// OpenAtVersion opens a fresh database of dialect d (configured by c) and applies only the first n
// migrations of service, for upgrade tests. Everything is closed when the test ends.
func OpenAtVersion(t testing.TB, d db.Dialect, c db.Config, service string, n int) *Old {
	t.Helper()
	ctx := context.Background()
	o := &Old{Handle: &db.Handle{}, Dialect: migrate.SQLite}
	var err error
	if d == db.SQLite {
		o.Handle.SQLite, err = db.OpenSQLite(ctx, c)
	} else {
		o.Handle.Postgres, err = db.OpenPostgres(ctx, c)
		o.Dialect = migrate.Postgres
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Handle.Close() })
	_, o.all = Migrations(t, d, service)
	o.SQL = o.Handle.SQL()
	if d == db.Postgres {
		// For PostgreSQL Handle.SQL opens a database/sql view of the pool that must be closed too.
		t.Cleanup(func() { o.SQL.Close() })
	}
	if _, err := migrate.Up(ctx, o.SQL, o.Dialect, o.all[:n]); err != nil {
		t.Fatal(err)
	}
	return o
}

// Migrations returns the embedded migrations of service for dialect d: their folder (to read a down
// migration) and the loaded list.
func Migrations(t testing.TB, d db.Dialect, service string) (fs.FS, []migrate.Migration) {
	t.Helper()
	fsys, err := migrate.Sub(migrations.FS, service, string(d))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrate.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return fsys, ms
}

// Upgrade applies every remaining migration, as a newer binary would at start.
func (o *Old) Upgrade(t testing.TB) {
	t.Helper()
	if _, err := migrate.Up(context.Background(), o.SQL, o.Dialect, o.all); err != nil {
		t.Fatal(err)
	}
}
