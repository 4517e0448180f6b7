// Package postgres opens the token store on PostgreSQL, safe to share between replicas.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/store/sqlstore"
)

// Store is the shared SQL store, with the hot-path read done natively in pgx: database/sql's layer costs
// more than the query on the read every GetAccessToken makes.
type Store struct {
	*sqlstore.Store
	db *db.PostgresDB
}

var _ store.Store = (*Store)(nil)

// New returns the token store over an opened, migrated PostgreSQL database.
func New(d *db.PostgresDB) *Store {
	sqldb := stdlib.OpenDBFromPool(d.Pool)
	return &Store{db: d, Store: sqlstore.New(sqldb, sqldb, sqlstore.Dialect{
		Time:       func(t time.Time) any { return t.UTC() },
		Translate:  db.PostgresError,
		SkipLocked: " FOR UPDATE SKIP LOCKED",
		TxOptions:  &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	}, func() error { return errors.Join(sqldb.Close(), d.Close()) })}
}

// AccessTokenGet implements store.Store.
func (s *Store) AccessTokenGet(ctx context.Context, k store.Key) (*store.Connection, error) {
	c, err := db.PostgresQueryRow(ctx, s.db, `SELECT key_id, access_token, token_type, expire_time, api_domain, status, version,
			refresh_token IS NOT NULL FROM connections WHERE provider = $1 AND connection_id = $2`,
		[]any{k.Provider, k.ConnectionID}, func(row db.Scanner) (*store.Connection, error) {
			c := store.Connection{Provider: k.Provider, ConnectionID: k.ConnectionID}
			var status int16
			var hasRefresh bool
			if err := row.Scan(&c.KeyID, &c.AccessToken, &c.TokenType, &c.ExpireTime, &c.APIDomain, &status, &c.Version, &hasRefresh); err != nil {
				return nil, err
			}
			c.Status, c.ExpireTime = store.Status(status), c.ExpireTime.UTC()
			if hasRefresh {
				c.RefreshToken = []byte{}
			}
			return &c, nil
		})
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("connection %s/%s not found", k.Provider, k.ConnectionID)
	}
	return c, err
}
