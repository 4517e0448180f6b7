package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/migrations"
)

// Handle is one service's opened database: exactly one of SQLite and Postgres is set.
type Handle struct {
	SQLite   *SQLiteDB
	Postgres *PostgresDB
}

// Open opens the service's database and brings its schema to the newest version, or, when migrate is
// false, checks that it is already there. Either way it refuses a schema newer than this binary knows.
func Open(ctx context.Context, c Config, service string, migrateOnStart bool) (*Handle, error) {
	h := &Handle{}
	var err error
	switch c.Dialect {
	case SQLite:
		h.SQLite, err = OpenSQLite(ctx, c)
	case Postgres:
		h.Postgres, err = OpenPostgres(ctx, c)
	default:
		err = fmt.Errorf("unknown database dialect %q", c.Dialect)
	}
	if err != nil {
		return nil, err
	}
	if err := h.migrate(ctx, service, migrateOnStart); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *Handle) migrate(ctx context.Context, service string, up bool) error {
	dialect, sub := migrate.SQLite, string(SQLite)
	if h.Postgres != nil {
		dialect, sub = migrate.Postgres, string(Postgres)
	}
	fsys, err := migrate.Sub(migrations.FS, service, sub)
	if err != nil {
		return err
	}
	ms, err := migrate.Load(fsys)
	if err != nil {
		return err
	}
	sqldb := h.SQL()
	if h.Postgres != nil {
		defer sqldb.Close()
	}
	if up {
		_, err = migrate.Up(ctx, sqldb, dialect, ms)
	} else {
		err = migrate.Check(ctx, sqldb, dialect, ms)
	}
	if err != nil {
		return fmt.Errorf("%s schema: %w", service, err)
	}
	return nil
}

// SQL returns a database/sql handle for administrative work (migrations, copies): the SQLite writer, or a
// new adapter over the PostgreSQL pool that the caller must close.
func (h *Handle) SQL() *sql.DB {
	if h.SQLite != nil {
		return h.SQLite.Write
	}
	return stdlib.OpenDBFromPool(h.Postgres.Pool)
}

// Ping checks the database answers.
func (h *Handle) Ping(ctx context.Context) error {
	if h.SQLite != nil {
		return h.SQLite.Ping(ctx)
	}
	return h.Postgres.Ping(ctx)
}

// Close closes whichever backend is open.
func (h *Handle) Close() error {
	var err error
	if h.SQLite != nil {
		err = errors.Join(err, h.SQLite.Close())
	}
	if h.Postgres != nil {
		err = errors.Join(err, h.Postgres.Close())
	}
	return err
}
