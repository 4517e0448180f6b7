// Package postgres opens the token store on PostgreSQL, safe to share between replicas.
package postgres

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/token/store/sqlstore"
)

// New returns the token store over an opened, migrated PostgreSQL database.
func New(d *db.PostgresDB) *sqlstore.Store {
	sqldb := stdlib.OpenDBFromPool(d.Pool)
	return sqlstore.New(sqldb, sqldb, sqlstore.Dialect{
		Time:      func(t time.Time) any { return t.UTC() },
		Translate: db.PostgresError,
	}, func() error { return errors.Join(sqldb.Close(), d.Close()) })
}
