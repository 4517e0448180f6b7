package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// insertEvent is EventInsert's statement: nothing is stored for a (source, dedupe key) already stored,
// and then no seq is returned.
const insertEvent = `INSERT INTO events (id, source, dedupe_key, status, content_type, payload, headers,
		receive_time, update_time, attempt_count, sender_address, module, operation, record_ids, affected_fields,
		server_time, event_type)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 0, $9, $10, $11, $12, $13, $14, $15)
	ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING seq`

// EventInsertBatch implements store.Store: one write transaction (one commit, one WAL sync) for the
// whole batch, one prepared insert per event. SQLite's single writer needs no ordering against other
// batches; the plan's order is kept only so that both backends do the same.
func (s *Store) EventInsertBatch(ctx context.Context, es []*store.Event) ([]store.Inserted, error) {
	plan := store.PlanBatch(es)
	headers := make([]string, len(es))
	for _, i := range plan.Insert {
		h, err := json.Marshal(es[i].Headers)
		if err != nil {
			return nil, err
		}
		headers[i] = string(h)
	}
	out := make([]store.Inserted, len(es))
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, insertEvent)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, i := range plan.Insert {
			e := es[i]
			stored := *e
			if stored.Payload == nil {
				stored.Payload = []byte{} // an empty body is still a body: the column is NOT NULL
			}
			err := ins.QueryRowContext(ctx, e.ID, e.Source, e.DedupeKey, int32(e.Status), e.ContentType, stored.Payload, headers[i],
				e.ReceiveTime.UnixMicro(), e.SenderAddress, e.Module, e.Operation, store.StringsJSON(e.RecordIDs),
				store.StringsJSON(e.AffectedFields), serverTime(e.ServerTime), e.EventType,
			).Scan(&stored.Seq)
			if err == sql.ErrNoRows {
				dup, err := scan(tx.QueryRowContext(ctx, `SELECT `+allColumns+` FROM events WHERE source = $1 AND dedupe_key = $2`,
					e.Source, e.DedupeKey), true)
				if err != nil {
					return err
				}
				out[i] = store.Inserted{Event: dup, Duplicate: true}
				continue
			}
			if err != nil {
				return err
			}
			stored.UpdateTime = stored.ReceiveTime
			out[i] = store.Inserted{Event: &stored}
		}
		return nil
	})
	if err != nil {
		return nil, db.SQLiteError(err)
	}
	plan.Answer(out)
	return out, nil
}
