package postgres

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// insertBatch stores the rows of parallel arrays in one statement (one text whatever the batch's size, so
// one prepared statement), in array order (WITH ORDINALITY), skipping any (source, dedupe key) already
// stored. txid and seq come from the columns' defaults: every event of the batch has this transaction's
// id, so the batch appears in list order at once, when it commits (see store.Cursor).
const insertBatch = `INSERT INTO events (id, source, dedupe_key, status, content_type, payload, headers,
		receive_time, update_time, attempt_count, sender_address, module, operation, record_ids, affected_fields,
		server_time, event_type)
	SELECT id, source, dedupe_key, status, content_type, payload, headers::jsonb, receive_time, receive_time, 0, sender_address,
		module, operation, record_ids::jsonb, affected_fields::jsonb, server_time, event_type
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::text[], $6::bytea[], $7::text[], $8::timestamptz[],
		$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[])
		WITH ORDINALITY AS b(id, source, dedupe_key, status, content_type, payload, headers, receive_time, sender_address,
			module, operation, record_ids, affected_fields, server_time, event_type, ord)
	ORDER BY ord
	ON CONFLICT (source, dedupe_key) DO NOTHING
	RETURNING id::text, seq, txid`

// selectStored reads the stored events of the (source, dedupe key) pairs in $1 and $2: one probe of the
// unique index per pair (a lateral subquery; LIMIT 1 keeps the planner from flattening it into a join).
// The join form ("(source, dedupe_key) IN (SELECT * FROM unnest(...))") got a generic plan that scanned
// every event, made while a new store's table was nearly empty and kept until autovacuum analyzed it: a
// duplicate delivery then read the whole table (TestPlansMadeOnANewStoreStayOnIndexes).
const selectStored = `SELECT e.* FROM unnest($1::text[], $2::text[]) AS k(source, dedupe_key),
	LATERAL (SELECT ` + allColumns + ` FROM events WHERE source = k.source AND dedupe_key = k.dedupe_key LIMIT 1) AS e`

// EventInsertBatch implements store.Store: one statement inserts the batch, in (source, dedupe key)
// order (store.PlanBatch: concurrent batches from several replicas then wait on each other's keys in one
// order and cannot deadlock); a second reads the events already stored for the keys that conflicted.
//
// The transaction is READ COMMITTED, named rather than taken from the server's default: when a key
// conflicts with another transaction's uncommitted insert, ON CONFLICT DO NOTHING waits for it to
// commit, and only a new snapshot per statement lets the read that follows see that row (under
// REPEATABLE READ it would find nothing and the delivery could be answered with no event).
func (s *Store) EventInsertBatch(ctx context.Context, es []*store.Event) ([]store.Inserted, error) {
	es, serr := s.fanOutStatus(ctx, es)
	if serr != nil {
		return nil, serr
	}
	plan := store.PlanBatch(es)
	n := len(plan.Insert)
	var (
		ids, sources, keys, types, senders = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		modules, ops, recordIDs, affected  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		eventTypes, headers                = make([]string, n), make([]string, n)
		statuses                           = make([]int16, n)
		payloads                           = make([][]byte, n)
		received, serverTimes              = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for j, i := range plan.Insert {
		e := es[i]
		h, err := json.Marshal(e.Headers)
		if err != nil {
			return nil, err
		}
		ids[j], sources[j], keys[j], statuses[j], types[j] = e.ID, e.Source, e.DedupeKey, int16(e.Status), e.ContentType
		payloads[j], headers[j], senders[j] = e.Payload, string(h), e.SenderAddress
		if payloads[j] == nil {
			payloads[j] = []byte{} // an empty body is still a body: the column is NOT NULL
		}
		received[j] = pgtype.Timestamptz{Time: e.ReceiveTime, Valid: true}
		serverTimes[j] = pgtype.Timestamptz{Time: e.ServerTime, Valid: !e.ServerTime.IsZero()}
		modules[j], ops[j], eventTypes[j] = e.Module, e.Operation, e.EventType
		recordIDs[j], affected[j] = store.StringsJSON(e.RecordIDs), store.StringsJSON(e.AffectedFields)
	}
	out := make([]store.Inserted, len(es))
	err := s.db.TxWith(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		type placed struct{ seq, txid int64 }
		inserted := make(map[string]placed, n)
		rows, err := tx.Query(ctx, insertBatch, ids, sources, keys, statuses, types, payloads, headers, received, senders,
			modules, ops, recordIDs, affected, serverTimes, eventTypes)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var p placed
			if err := rows.Scan(&id, &p.seq, &p.txid); err != nil {
				rows.Close()
				return err
			}
			inserted[id] = p
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var conflictSources, conflictKeys []string
		for _, i := range plan.Insert {
			e := es[i]
			p, ok := inserted[e.ID]
			if !ok {
				conflictSources, conflictKeys = append(conflictSources, e.Source), append(conflictKeys, e.DedupeKey)
				continue
			}
			stored := *e
			if stored.Payload == nil {
				stored.Payload = []byte{}
			}
			stored.Seq, stored.Tx, stored.UpdateTime = p.seq, p.txid, stored.ReceiveTime
			out[i] = store.Inserted{Event: &stored}
		}
		if err := fanOut(ctx, tx, out); err != nil {
			return err
		}
		if len(conflictKeys) == 0 {
			return nil
		}
		return s.answerConflicts(ctx, tx, es, plan, out, conflictSources, conflictKeys)
	})
	if err != nil {
		return nil, err
	}
	plan.Answer(out)
	return out, nil
}

// answerConflicts answers the events of the plan that were not inserted with the events already stored
// under their keys.
func (s *Store) answerConflicts(ctx context.Context, tx pgx.Tx, es []*store.Event, plan store.BatchPlan, out []store.Inserted, sources, keys []string) error {
	type key struct{ source, dedupe string }
	stored := make(map[key]*store.Event, len(keys))
	rows, err := tx.Query(ctx, selectStored, sources, keys)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scan(rows, true)
		if err != nil {
			return err
		}
		stored[key{e.Source, e.DedupeKey}] = e
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, i := range plan.Insert {
		if out[i].Event != nil {
			continue
		}
		e, ok := stored[key{es[i].Source, es[i].DedupeKey}]
		if !ok {
			// Not inserted, yet not stored: cannot happen under READ COMMITTED (the conflicting row was
			// committed before ON CONFLICT gave up on it), unless it was removed since. Fail the batch (the
			// senders retry) rather than answer without an event.
			return errs.New(errs.KindInternal, "an event conflicting with a delivery was not found")
		}
		out[i] = store.Inserted{Event: e, Duplicate: true}
	}
	return nil
}
