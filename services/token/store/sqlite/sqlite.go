// Package sqlite is the token store on an embedded SQLite file.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/token/store"
)

// Store keeps connections in SQLite.
type Store struct{ db *db.SQLiteDB }

var _ store.Store = (*Store)(nil)

// New returns a store over an opened, migrated database.
func New(d *db.SQLiteDB) *Store { return &Store{db: d} }

const columns = `provider, connection_id, access_token, refresh_token, token_type, expire_time, scopes,
	api_domain, status, create_time, update_time`

// ConnectionPut implements store.Store.
func (s *Store) ConnectionPut(ctx context.Context, c *store.Connection) (*store.Connection, error) {
	scopes, err := json.Marshal(nonNil(c.Scopes))
	if err != nil {
		return nil, err
	}
	out := *c
	var created int64
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO connections (`+columns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
			ON CONFLICT (provider, connection_id) DO UPDATE SET
				access_token = excluded.access_token, refresh_token = excluded.refresh_token,
				token_type = excluded.token_type, expire_time = excluded.expire_time, scopes = excluded.scopes,
				api_domain = excluded.api_domain, status = excluded.status, update_time = excluded.update_time
			RETURNING create_time`,
			c.Provider, c.ConnectionID, []byte(c.AccessToken), nullBytes(c.RefreshToken), c.TokenType,
			c.ExpireTime.UnixMicro(), string(scopes), c.APIDomain, int(c.Status), c.UpdateTime.UnixMicro(),
		).Scan(&created)
	})
	if err != nil {
		return nil, db.SQLiteError(err)
	}
	out.CreateTime = time.UnixMicro(created).UTC()
	return &out, nil
}

// ConnectionGet implements store.Store.
func (s *Store) ConnectionGet(ctx context.Context, provider, id string) (*store.Connection, error) {
	row := s.db.Read.QueryRowContext(ctx, `SELECT `+columns+` FROM connections WHERE provider = $1 AND connection_id = $2`, provider, id)
	c, err := scan(row)
	if err != nil {
		return nil, notFound(db.SQLiteError(err), provider, id)
	}
	return c, nil
}

// ConnectionList implements store.Store.
func (s *Store) ConnectionList(ctx context.Context, p store.ConnectionListParams) ([]*store.Connection, error) {
	var w sqlq.Where
	w.AddIf(p.Provider != "", "provider = ?", p.Provider)
	w.AddIf(p.AfterProvider != "" || p.AfterConnectionID != "", "(provider, connection_id) > (?, ?)", p.AfterProvider, p.AfterConnectionID)
	q := `SELECT ` + columns + ` FROM connections` + w.String() + " ORDER BY provider, connection_id LIMIT " + w.Arg(p.Limit)
	args := w.Args
	return db.SQLiteQueryAll(ctx, s.db, q, args, scan)
}

// ConnectionDelete implements store.Store.
func (s *Store) ConnectionDelete(ctx context.Context, provider, id string) error {
	return s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM connections WHERE provider = $1 AND connection_id = $2`, provider, id)
		if err != nil {
			return db.SQLiteError(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
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
	var scopes string
	var expire, created, updated int64
	var status int
	if err := row.Scan(&c.Provider, &c.ConnectionID, &access, &refresh, &c.TokenType, &expire, &scopes,
		&c.APIDomain, &status, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &c.Scopes); err != nil {
		return nil, err
	}
	c.AccessToken, c.RefreshToken, c.Status = string(access), string(refresh), store.Status(status)
	c.ExpireTime = time.UnixMicro(expire).UTC()
	c.CreateTime = time.UnixMicro(created).UTC()
	c.UpdateTime = time.UnixMicro(updated).UTC()
	return &c, nil
}

func notFound(err error, provider, id string) error {
	if errs.KindOf(err) == errs.KindNotFound {
		return errs.NotFound("connection %s/%s not found", provider, id)
	}
	return err
}

func nullBytes(s string) any {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
