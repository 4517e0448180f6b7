package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// batchColumns are the columns a batch insert sets; each row binds batchParams of them (update_time
// repeats receive_time, attempt_count is 0).
const (
	batchColumns = `id, source, dedupe_key, status, content_type, payload, headers, receive_time, update_time, attempt_count,
		sender_address, module, operation, record_ids, affected_fields, server_time, event_type`
	batchParams = 15
	// maxStatementRows keeps one statement's parameters far below SQLite's limit (32,766).
	maxStatementRows = 500
)

// EventInsertBatch implements store.Store: one write transaction (one commit, one WAL append) for the
// whole batch, one multi-row INSERT OR IGNORE … RETURNING per up to maxStatementRows events.
//
// OR IGNORE rather than ON CONFLICT (source, dedupe_key) DO NOTHING: with every uniqueness conflict
// ignored the statement cannot abort half-way, so SQLite keeps no statement journal for it (a copy of
// every page it changes, which for a large batch spills to a temporary file: measured 30-40 % of a
// batch's cost). An event not inserted is then either a duplicate, found under its (source, dedupe key),
// or one whose id is taken, which fails the batch as a unique violation would have.
func (s *Store) EventInsertBatch(ctx context.Context, es []*store.Event) ([]store.Inserted, error) {
	plan := store.PlanBatch(es)
	out := make([]store.Inserted, len(es))
	// The statements are prepared before the transaction (on the writer's one connection, which the
	// transaction then holds): one per chunk size, the subscription check and the fan-out's.
	var queries []string
	for rest := len(plan.Insert); rest > 0; rest -= min(rest, maxStatementRows) {
		queries = append(queries, insertRowsSQL(min(rest, maxStatementRows)))
	}
	queries = append(queries, anySubscriptionSQL, fanOutSQL, settleUnwantedSQL)
	stmts, err := s.db.WriteStmts(ctx, queries...)
	if err != nil {
		return nil, err
	}
	err = s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		es, err := withFanOutStatus(ctx, tx, stmts, es)
		if err != nil {
			return err
		}
		for c, rest := 0, plan.Insert; len(rest) > 0; c++ {
			n := min(len(rest), maxStatementRows)
			if err := insertRows(ctx, tx, stmts, queries[c], es, rest[:n], out); err != nil {
				return err
			}
			rest = rest[n:]
		}
		if err := fanOut(ctx, tx, stmts, out); err != nil {
			return err
		}
		for _, i := range plan.Insert {
			if out[i].Event != nil {
				continue
			}
			dup, err := scan(tx.QueryRowContext(ctx, `SELECT `+allColumns+` FROM events WHERE source = $1 AND dedupe_key = $2`,
				es[i].Source, es[i].DedupeKey), true)
			if err == sql.ErrNoRows {
				return errs.New(errs.KindAlreadyExists, "event %s is already stored", es[i].ID)
			}
			if err != nil {
				return err
			}
			out[i] = store.Inserted{Event: dup, Duplicate: true}
		}
		return nil
	})
	if err != nil {
		return nil, db.SQLiteError(err)
	}
	plan.Answer(out)
	return out, nil
}

// insertRowsSQL is the multi-row INSERT of n events that insertRows runs.
func insertRowsSQL(n int) string {
	var q strings.Builder
	q.Grow(120 + n*100)
	q.WriteString(`INSERT OR IGNORE INTO events (` + batchColumns + `) VALUES `)
	for j := range n {
		if j > 0 {
			q.WriteByte(',')
		}
		p := func(k int) string { return "?" + strconv.Itoa(j*batchParams+k) }
		// id … headers, receive_time twice (update_time), attempt_count 0, then the rest.
		q.WriteString("(" + p(1) + "," + p(2) + "," + p(3) + "," + p(4) + "," + p(5) + "," + p(6) + "," + p(7) + "," + p(8) + "," + p(8) +
			",0," + p(9) + "," + p(10) + "," + p(11) + "," + p(12) + "," + p(13) + "," + p(14) + "," + p(15) + ")")
	}
	q.WriteString(` RETURNING id, seq`)
	return q.String()
}

// insertRows inserts the events es[idx…] with query (insertRowsSQL(len(idx)), from stmts when prepared
// there) and fills out for those inserted.
func insertRows(ctx context.Context, tx *sql.Tx, stmts db.Prepared, query string, es []*store.Event, idx []int, out []store.Inserted) error {
	args := make([]any, 0, batchParams*len(idx))
	byID := make(map[string]int, len(idx))
	for _, i := range idx {
		e := es[i]
		headers, err := json.Marshal(e.Headers)
		if err != nil {
			return err
		}
		payload := e.Payload
		if payload == nil {
			payload = []byte{} // an empty body is still a body: the column is NOT NULL
		}
		args = append(args, e.ID, e.Source, e.DedupeKey, int32(e.Status), e.ContentType, payload, string(headers),
			e.ReceiveTime.UnixMicro(), e.SenderAddress, e.Module, e.Operation, store.StringsJSON(e.RecordIDs),
			store.StringsJSON(e.AffectedFields), serverTime(e.ServerTime), e.EventType)
		byID[e.ID] = i
	}
	txst, err := stmts.Stmt(ctx, tx, query)
	if err != nil {
		return err
	}
	defer txst.Close()
	rows, err := txst.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		i, ok := byID[id]
		if !ok {
			return errs.New(errs.KindInternal, "the insert returned an event it was not given")
		}
		stored := *es[i]
		if stored.Payload == nil {
			stored.Payload = []byte{}
		}
		stored.Seq, stored.UpdateTime = seq, stored.ReceiveTime
		out[i] = store.Inserted{Event: &stored}
	}
	return rows.Err()
}
