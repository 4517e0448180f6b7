// Package postgres is the token store on PostgreSQL, safe to share between replicas.
package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/token/store"
)

// Store keeps connections in PostgreSQL.
type Store struct{ db *db.PostgresDB }

var _ store.Store = (*Store)(nil)

// New returns a store over an opened, migrated database.
func New(d *db.PostgresDB) *Store { return &Store{db: d} }

const columns = `provider, connection_id, access_token, refresh_token, token_type, expire_time, scopes,
	api_domain, status, create_time, update_time`

// ConnectionPut implements store.Store.
func (s *Store) ConnectionPut(ctx context.Context, c *store.Connection) (*store.Connection, error) {
	out := *c
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO connections (`+columns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
			ON CONFLICT (provider, connection_id) DO UPDATE SET
				access_token = excluded.access_token, refresh_token = excluded.refresh_token,
				token_type = excluded.token_type, expire_time = excluded.expire_time, scopes = excluded.scopes,
				api_domain = excluded.api_domain, status = excluded.status, update_time = excluded.update_time
			RETURNING create_time`,
			c.Provider, c.ConnectionID, []byte(c.AccessToken), nullBytes(c.RefreshToken), c.TokenType,
			c.ExpireTime, scopes, c.APIDomain, int16(c.Status), c.UpdateTime,
		).Scan(&out.CreateTime)
	})
	if err != nil {
		return nil, err
	}
	out.CreateTime = out.CreateTime.UTC()
	return &out, nil
}

// ConnectionGet implements store.Store.
func (s *Store) ConnectionGet(ctx context.Context, provider, id string) (*store.Connection, error) {
	c, err := db.PostgresQueryRow(ctx, s.db, `SELECT `+columns+` FROM connections WHERE provider = $1 AND connection_id = $2`,
		[]any{provider, id}, scan)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("connection %s/%s not found", provider, id)
	}
	return c, err
}

// ConnectionList implements store.Store.
func (s *Store) ConnectionList(ctx context.Context, p store.ConnectionListParams) ([]*store.Connection, error) {
	var w sqlq.Where
	w.AddIf(p.Provider != "", "provider = ?", p.Provider)
	w.AddIf(p.AfterProvider != "" || p.AfterConnectionID != "", "(provider, connection_id) > (?, ?)", p.AfterProvider, p.AfterConnectionID)
	q := `SELECT ` + columns + ` FROM connections` + w.String() + " ORDER BY provider, connection_id LIMIT " + w.Arg(p.Limit)
	args := w.Args
	return db.PostgresQueryAll(ctx, s.db, q, args, scan)
}

// ConnectionDelete implements store.Store.
func (s *Store) ConnectionDelete(ctx context.Context, provider, id string) error {
	return s.db.Tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM connections WHERE provider = $1 AND connection_id = $2`, provider, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errs.NotFound("connection %s/%s not found", provider, id)
		}
		return nil
	})
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

func scan(row db.Scanner) (*store.Connection, error) {
	var c store.Connection
	var access, refresh []byte
	var status int16
	if err := row.Scan(&c.Provider, &c.ConnectionID, &access, &refresh, &c.TokenType, &c.ExpireTime, &c.Scopes,
		&c.APIDomain, &status, &c.CreateTime, &c.UpdateTime); err != nil {
		return nil, err
	}
	c.AccessToken, c.RefreshToken, c.Status = string(access), string(refresh), store.Status(status)
	c.ExpireTime, c.CreateTime, c.UpdateTime = c.ExpireTime.UTC(), c.CreateTime.UTC(), c.UpdateTime.UTC()
	return &c, nil
}

func nullBytes(s string) any {
	if s == "" {
		return nil
	}
	return []byte(s)
}
