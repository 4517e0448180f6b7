// Package postgres is the audit store on PostgreSQL, safe to share between replicas.
package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// Store keeps the audit log in PostgreSQL.
type Store struct{ db *db.PostgresDB }

var _ store.Store = (*Store)(nil)

// New returns a store over an opened, migrated database.
func New(d *db.PostgresDB) *Store { return &Store{db: d} }

const columns = `sequence, id::text, occur_time, record_time, actor, action, resource, outcome, metadata,
	idempotency_key, principal, hash_version, previous_hash, hash`

// EventAppend implements store.Store. Locking the chain_head row makes appends from every replica take
// turns; the idempotency check runs after the lock so that two calls with one key cannot both append.
func (s *Store) EventAppend(ctx context.Context, e *store.Event) (*store.Event, bool, error) {
	out := *e
	var dup *store.Event
	err := s.db.Tx(ctx, func(tx pgx.Tx) error {
		var headSeq int64
		var headHash []byte
		if err := tx.QueryRow(ctx, `SELECT sequence, hash FROM chain_head WHERE id = 1 FOR UPDATE`).Scan(&headSeq, &headHash); err != nil {
			return err
		}
		if e.IdempotencyKey != "" {
			prev, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM events WHERE principal = $1 AND idempotency_key = $2`,
				e.Principal, e.IdempotencyKey))
			if err == nil {
				dup = prev
				return nil
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		out.Seal(headSeq, headHash)
		if _, err := tx.Exec(ctx, `INSERT INTO events (sequence, id, occur_time, record_time, actor, action, resource, outcome,
				metadata, idempotency_key, principal, hash_version, previous_hash, hash)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			out.Sequence, out.ID, out.OccurTime, out.RecordTime, out.Actor, out.Action, out.Resource, int16(out.Outcome),
			out.Metadata, nullString(out.IdempotencyKey), out.Principal, int16(out.HashVersion), out.PreviousHash, out.Hash); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE chain_head SET sequence = $1, hash = $2 WHERE id = 1`, out.Sequence, out.Hash)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if dup != nil {
		return dup, true, nil
	}
	return &out, false, nil
}

// EventGet implements store.Store.
func (s *Store) EventGet(ctx context.Context, id string) (*store.Event, error) {
	e, err := db.PostgresQueryRow(ctx, s.db, `SELECT `+columns+` FROM events WHERE id = $1`, []any{id}, scan)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("event %s not found", id)
	}
	return e, err
}

// EventList implements store.Store.
func (s *Store) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	q, args := store.ListQuery(columns, p, func(t time.Time) any { return t })
	return db.PostgresQueryAll(ctx, s.db, q, args, scan)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

func scan(row db.Scanner) (*store.Event, error) {
	var e store.Event
	var outcome, version int16
	var key *string
	if err := row.Scan(&e.Sequence, &e.ID, &e.OccurTime, &e.RecordTime, &e.Actor, &e.Action, &e.Resource, &outcome,
		&e.Metadata, &key, &e.Principal, &version, &e.PreviousHash, &e.Hash); err != nil {
		return nil, err
	}
	e.Outcome, e.HashVersion, e.OccurTime, e.RecordTime = int32(outcome), int32(version), e.OccurTime.UTC(), e.RecordTime.UTC()
	if key != nil {
		e.IdempotencyKey = *key
	}
	return &e, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
