// Package sqlite is the audit store on an embedded SQLite file.
package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// Store keeps the audit log in SQLite.
type Store struct{ db *db.SQLiteDB }

var _ store.Store = (*Store)(nil)

// New returns a store over an opened, migrated database.
func New(d *db.SQLiteDB) *Store { return &Store{db: d} }

const columns = `sequence, id, occur_time, record_time, actor, action, resource, outcome, metadata,
	idempotency_key, principal, hash_version, previous_hash, hash`

// EventAppend implements store.Store. The single writer connection and the immediate transaction make
// appends strictly one at a time, so reading the head and writing the next event cannot interleave.
func (s *Store) EventAppend(ctx context.Context, e *store.Event) (*store.Event, bool, error) {
	out := *e
	var dup *store.Event
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		if e.IdempotencyKey != "" {
			prev, err := scan(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM events WHERE principal = $1 AND idempotency_key = $2`,
				e.Principal, e.IdempotencyKey))
			if err == nil {
				dup = prev
				return nil
			} else if err != sql.ErrNoRows {
				return err
			}
		}
		var headSeq int64
		var headHash []byte
		if err := tx.QueryRowContext(ctx, `SELECT sequence, hash FROM chain_head WHERE id = 1`).Scan(&headSeq, &headHash); err != nil {
			return err
		}
		out.Seal(headSeq, headHash)
		if _, err := tx.ExecContext(ctx, `INSERT INTO events (`+columns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			out.Sequence, out.ID, out.OccurTime.UnixMicro(), out.RecordTime.UnixMicro(), out.Actor, out.Action, out.Resource,
			out.Outcome, out.Metadata, nullString(out.IdempotencyKey), out.Principal, out.HashVersion, out.PreviousHash, out.Hash); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE chain_head SET sequence = $1, hash = $2 WHERE id = 1`, out.Sequence, out.Hash)
		return err
	})
	if err != nil {
		return nil, false, db.SQLiteError(err)
	}
	if dup != nil {
		return dup, true, nil
	}
	return &out, false, nil
}

// EventGet implements store.Store.
func (s *Store) EventGet(ctx context.Context, id string) (*store.Event, error) {
	e, err := scan(s.db.Read.QueryRowContext(ctx, `SELECT `+columns+` FROM events WHERE id = $1`, id))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("event %s not found", id)
	}
	return e, db.SQLiteError(err)
}

// EventList implements store.Store.
func (s *Store) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	q, args := store.ListQuery(columns, p, func(t time.Time) any { return t.UnixMicro() })
	return db.SQLiteQueryAll(ctx, s.db, q, args, scan)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

func scan(row db.Scanner) (*store.Event, error) {
	var e store.Event
	var occur, record int64
	var key sql.NullString
	if err := row.Scan(&e.Sequence, &e.ID, &occur, &record, &e.Actor, &e.Action, &e.Resource, &e.Outcome,
		&e.Metadata, &key, &e.Principal, &e.HashVersion, &e.PreviousHash, &e.Hash); err != nil {
		return nil, err
	}
	e.OccurTime, e.RecordTime, e.IdempotencyKey = time.UnixMicro(occur).UTC(), time.UnixMicro(record).UTC(), key.String
	return &e, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
