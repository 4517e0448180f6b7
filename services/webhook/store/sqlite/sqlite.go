// Package sqlite is the webhook store on an embedded SQLite file.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// Store keeps inbound webhooks in SQLite.
type Store struct {
	db         *db.SQLiteDB
	deliveries // store.DeliveryStore, see deliveries.go
}

var _ store.Store = (*Store)(nil)

// New returns a store over an opened, migrated database.
func New(d *db.SQLiteDB) *Store {
	return &Store{db: d, deliveries: deliveries{D: &deliveryDriver{db: d}}}
}

const (
	listColumns = `seq, id, source, dedupe_key, status, content_type, receive_time, update_time, attempt_count, sender_address,
		module, operation, record_ids, affected_fields, server_time, event_type`
	allColumns = listColumns + `, payload, headers`
)

// EventInsert implements store.Store.
func (s *Store) EventInsert(ctx context.Context, e *store.Event) (*store.Event, bool, error) {
	headers, err := json.Marshal(e.Headers)
	if err != nil {
		return nil, false, err
	}
	out := *e
	if out.Payload == nil {
		out.Payload = []byte{} // an empty body is still a body: the column is NOT NULL
	}
	stmts, err := s.db.WriteStmts(ctx, anySubscriptionSQL, fanOutSQL, settleUnwantedSQL)
	if err != nil {
		return nil, false, err
	}
	var dup *store.Event
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		es, err := withFanOutStatus(ctx, tx, stmts, []*store.Event{e})
		if err != nil {
			return err
		}
		e := es[0]
		out.Status = e.Status
		err = tx.QueryRowContext(ctx, `INSERT INTO events (id, source, dedupe_key, status, content_type, payload, headers,
				receive_time, update_time, attempt_count, sender_address, module, operation, record_ids, affected_fields,
				server_time, event_type)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 0, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING seq`,
			e.ID, e.Source, e.DedupeKey, int32(e.Status), e.ContentType, out.Payload, string(headers), e.ReceiveTime.UnixMicro(), e.SenderAddress,
			e.Module, e.Operation, store.StringsJSON(e.RecordIDs), store.StringsJSON(e.AffectedFields), serverTime(e.ServerTime), e.EventType,
		).Scan(&out.Seq)
		if err == nil {
			err = fanOut(ctx, tx, stmts, []store.Inserted{{Event: &out}})
		}
		if err == sql.ErrNoRows {
			dup, err = scan(tx.QueryRowContext(ctx, `SELECT `+allColumns+` FROM events WHERE source = $1 AND dedupe_key = $2`,
				e.Source, e.DedupeKey), true)
		}
		return err
	})
	if err != nil {
		return nil, false, db.SQLiteError(err)
	}
	if dup != nil {
		return dup, true, nil
	}
	out.UpdateTime = out.ReceiveTime
	return &out, false, nil
}

// EventGet implements store.Store.
func (s *Store) EventGet(ctx context.Context, id string) (*store.Event, error) {
	e, err := scan(s.db.Read.QueryRowContext(ctx, `SELECT `+allColumns+` FROM events WHERE id = $1`, id), true)
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("event %s not found", id)
	}
	return e, db.SQLiteError(err)
}

// EventList implements store.Store.
func (s *Store) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	q, args := store.ListQuery(listColumns, store.BySeq, p)
	return db.SQLiteQueryAll(ctx, s.db, q, args, scanList)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

func scan(row db.Scanner, full bool) (*store.Event, error) {
	var e store.Event
	var received, updated int64
	var headers, recordIDs, affected string
	var serverTime sql.NullInt64
	dest := []any{&e.Seq, &e.ID, &e.Source, &e.DedupeKey, &e.Status, &e.ContentType, &received, &updated, &e.AttemptCount, &e.SenderAddress,
		&e.Module, &e.Operation, &recordIDs, &affected, &serverTime, &e.EventType}
	if full {
		dest = append(dest, &e.Payload, &headers)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if full {
		if err := json.Unmarshal([]byte(headers), &e.Headers); err != nil {
			return nil, err
		}
		if e.Payload == nil {
			e.Payload = []byte{}
		}
	}
	var err error
	if e.RecordIDs, err = store.ParseStrings(recordIDs); err != nil {
		return nil, err
	}
	if e.AffectedFields, err = store.ParseStrings(affected); err != nil {
		return nil, err
	}
	if serverTime.Valid {
		e.ServerTime = time.UnixMicro(serverTime.Int64).UTC()
	}
	e.ReceiveTime, e.UpdateTime = time.UnixMicro(received).UTC(), time.UnixMicro(updated).UTC()
	return &e, nil
}

// serverTime is the column value of a notification's server time: NULL when there is none.
func serverTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// scanList reads a listed event: every one is settled, since SQLite's single writer commits in seq order.
func scanList(row db.Scanner) (*store.Event, error) {
	e, err := scan(row, false)
	if e != nil {
		e.Settled = true
	}
	return e, err
}
