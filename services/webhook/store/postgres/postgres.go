// Package postgres is the webhook store on PostgreSQL, safe to share between replicas.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// Store keeps inbound webhooks in PostgreSQL.
type Store struct {
	db         *db.PostgresDB
	deliveries // store.DeliveryStore, see deliveries.go
}

var _ store.Store = (*Store)(nil)

// New returns a store over an opened, migrated database.
func New(d *db.PostgresDB) *Store {
	return &Store{db: d, deliveries: deliveries{D: &deliveryDriver{db: d}}}
}

const (
	listColumns = `seq, txid, id::text, source, dedupe_key, status, content_type, receive_time, update_time, attempt_count, sender_address,
		module, operation, record_ids::text, affected_fields::text, server_time, event_type`
	allColumns = listColumns + `, payload, headers::text`
)

// EventInsert implements store.Store. ON CONFLICT DO NOTHING makes concurrent deliveries of one
// webhook to several replicas store it once; the loser reads the winner's row.
func (s *Store) EventInsert(ctx context.Context, e *store.Event) (*store.Event, bool, error) {
	e, err := s.fanOutStatusOf(ctx, e)
	if err != nil {
		return nil, false, err
	}
	headers, err := json.Marshal(e.Headers)
	if err != nil {
		return nil, false, err
	}
	out := *e
	if out.Payload == nil {
		out.Payload = []byte{} // an empty body is still a body: the column is NOT NULL
	}
	var dup *store.Event
	err = s.db.Tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO events (id, source, dedupe_key, status, content_type, payload, headers,
				receive_time, update_time, attempt_count, sender_address, module, operation, record_ids, affected_fields,
				server_time, event_type)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 0, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING seq, txid`,
			e.ID, e.Source, e.DedupeKey, int16(e.Status), e.ContentType, out.Payload, string(headers), e.ReceiveTime, e.SenderAddress,
			e.Module, e.Operation, store.StringsJSON(e.RecordIDs), store.StringsJSON(e.AffectedFields), serverTime(e.ServerTime), e.EventType,
		).Scan(&out.Seq, &out.Tx)
		if err == nil {
			err = fanOut(ctx, tx, []store.Inserted{{Event: &out}})
		}
		if errors.Is(err, pgx.ErrNoRows) {
			dup, err = scan(tx.QueryRow(ctx, `SELECT `+allColumns+` FROM events WHERE source = $1 AND dedupe_key = $2`,
				e.Source, e.DedupeKey), true)
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if dup != nil {
		return dup, true, nil
	}
	out.UpdateTime = out.ReceiveTime
	return &out, false, nil
}

// EventGet implements store.Store.
func (s *Store) EventGet(ctx context.Context, id string) (*store.Event, error) {
	e, err := db.PostgresQueryRow(ctx, s.db, `SELECT `+allColumns+` FROM events WHERE id = $1`, []any{id}, scanFull)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("event %s not found", id)
	}
	return e, err
}

// EventList implements store.Store.
func (s *Store) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	q, args := store.ListQuery(listColumns, store.ByCommitHorizon, p)
	return db.PostgresQueryAll(ctx, s.db, q, args, func(row db.Scanner) (*store.Event, error) {
		var e store.Event
		if err := scanInto(row, &e, false, &e.Settled); err != nil {
			return nil, err
		}
		return &e, nil
	})
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

func scan(row db.Scanner, full bool) (*store.Event, error) {
	var e store.Event
	if err := scanInto(row, &e, full); err != nil {
		return nil, err
	}
	return &e, nil
}

// scanInto reads the list columns into e, then the payload and headers when full, then extra.
func scanInto(row db.Scanner, e *store.Event, full bool, extra ...any) error {
	var status int16
	var headers, recordIDs, affected string
	var serverTime *time.Time
	dest := []any{&e.Seq, &e.Tx, &e.ID, &e.Source, &e.DedupeKey, &status, &e.ContentType, &e.ReceiveTime, &e.UpdateTime, &e.AttemptCount, &e.SenderAddress,
		&e.Module, &e.Operation, &recordIDs, &affected, &serverTime, &e.EventType}
	if full {
		dest = append(dest, &e.Payload, &headers)
	}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return err
	}
	if full {
		if err := json.Unmarshal([]byte(headers), &e.Headers); err != nil {
			return err
		}
		if e.Payload == nil {
			e.Payload = []byte{}
		}
	}
	var err error
	if e.RecordIDs, err = store.ParseStrings(recordIDs); err != nil {
		return err
	}
	if e.AffectedFields, err = store.ParseStrings(affected); err != nil {
		return err
	}
	if serverTime != nil {
		e.ServerTime = serverTime.UTC()
	}
	e.Status, e.ReceiveTime, e.UpdateTime = store.Status(status), e.ReceiveTime.UTC(), e.UpdateTime.UTC()
	return nil
}

// serverTime is the column value of a notification's server time: NULL when there is none.
func serverTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func scanFull(row db.Scanner) (*store.Event, error) { return scan(row, true) }
