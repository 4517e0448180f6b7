// Package sqlite is the audit store's driver for an embedded SQLite file.
package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// Driver keeps the audit log in SQLite.
type Driver struct{ db *db.SQLiteDB }

var _ store.Driver = (*Driver)(nil)

// New returns the audit log over an opened, migrated database.
func New(d *db.SQLiteDB) *store.Log { return store.NewLog(NewDriver(d)) }

// NewDriver returns the driver over an opened, migrated database.
func NewDriver(d *db.SQLiteDB) *Driver { return &Driver{db: d} }

const columns = `sequence, id, occur_time, record_time, actor, action, resource, outcome, metadata,
	idempotency_key, principal, hash_version, previous_hash, hash, actor_type, session_id, request_id, source_service`

// AppendTx implements store.Driver. The single writer connection and its immediate transaction make
// appends strictly one at a time (SQLite's serializable write lock, taken at BEGIN), so the head read by
// HeadForUpdate cannot move before the commit.
func (d *Driver) AppendTx(ctx context.Context, fn func(store.AppendTx) error) error {
	return db.SQLiteError(d.db.WriteTx(ctx, func(tx *sql.Tx) error { return fn(appendTx{tx}) }))
}

type appendTx struct{ tx *sql.Tx }

func (a appendTx) HeadForUpdate(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := a.tx.QueryRowContext(ctx, `SELECT sequence, hash FROM chain_head WHERE id = 1`).Scan(&seq, &hash)
	return seq, hash, err
}

// EventsByKeys looks the keys up one by one through the unique (principal, idempotency_key) index: in
// process, a prepared lookup costs microseconds.
func (a appendTx) EventsByKeys(ctx context.Context, keys []store.Key) ([]*store.Event, error) {
	st, err := a.tx.PrepareContext(ctx, `SELECT `+columns+` FROM events WHERE principal = ? AND idempotency_key = ?`)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var es []*store.Event
	for _, k := range keys {
		e, err := scan(st.QueryRowContext(ctx, k.Principal, k.IdempotencyKey))
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return nil, err
		default:
			es = append(es, e)
		}
	}
	return es, nil
}

func (a appendTx) InsertEvents(ctx context.Context, es []*store.Event) error {
	st, err := a.tx.PrepareContext(ctx, `INSERT INTO events (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, e := range es {
		if _, err := st.ExecContext(ctx, e.Sequence, e.ID, e.OccurTime.UnixMicro(), e.RecordTime.UnixMicro(), e.Actor, e.Action,
			e.Resource, e.Outcome, e.Metadata, nullString(e.IdempotencyKey), e.Principal, e.HashVersion, e.PreviousHash, e.Hash,
			e.ActorType, e.SessionID, e.RequestID, e.SourceService); err != nil {
			return err
		}
	}
	return nil
}

func (a appendTx) MoveHead(ctx context.Context, seq int64, hash []byte) error {
	_, err := a.tx.ExecContext(ctx, `UPDATE chain_head SET sequence = ?, hash = ? WHERE id = 1`, seq, hash)
	return err
}

// EventGet implements store.Driver.
func (d *Driver) EventGet(ctx context.Context, id string) (*store.Event, error) {
	e, err := scan(d.db.Read.QueryRowContext(ctx, `SELECT `+columns+` FROM events WHERE id = ?`, id))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("event %s not found", id)
	}
	return e, db.SQLiteError(err)
}

// EventList implements store.Driver.
func (d *Driver) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	q, args := store.ListQuery(columns, p, func(t time.Time) any { return t.UnixMicro() })
	return db.SQLiteQueryAll(ctx, d.db, q, args, scan)
}

// Ping implements store.Driver.
func (d *Driver) Ping(ctx context.Context) error { return d.db.Ping(ctx) }

// Close implements store.Driver.
func (d *Driver) Close() error { return d.db.Close() }

func scan(row db.Scanner) (*store.Event, error) {
	var e store.Event
	var occur, record int64
	var key sql.NullString
	if err := row.Scan(&e.Sequence, &e.ID, &occur, &record, &e.Actor, &e.Action, &e.Resource, &e.Outcome,
		&e.Metadata, &key, &e.Principal, &e.HashVersion, &e.PreviousHash, &e.Hash,
		&e.ActorType, &e.SessionID, &e.RequestID, &e.SourceService); err != nil {
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
