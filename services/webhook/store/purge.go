package store

import (
	"context"
	"time"

	"github.com/sergas/core/internal/errs"
)

// EventsPurge implements DeliveryStore: oldest first, p.BatchSize events per transaction (each with its
// own audit record), until none is left to purge or ctx ends (the batches done stay done, and their
// counts are returned with ctx's error).
//
// An event's dedupe key is kept on its row, so a purged event's key is forgotten: a sender that repeats
// a delivery after its event was purged has it stored again. Retention bounds the dedupe window.
func (s Deliveries) EventsPurge(ctx context.Context, p PurgeParams) (PurgeResult, error) {
	if p.BatchSize <= 0 {
		return PurgeResult{}, errs.Invalid("purge batch size must be positive")
	}
	if p.Before.IsZero() {
		return PurgeResult{}, errs.Invalid("purge needs a time before which events are purged")
	}
	p.Before, p.Now = micro(p.Before), micro(p.Now)
	var total PurgeResult
	var after EventCursor // the zero time sorts before every receive time
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var got PurgeResult
		var n int
		err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
			ids, last, err := tx.EventsPurgeable(ctx, p.Before, after, p.BatchSize)
			if err != nil || len(ids) == 0 {
				return err
			}
			deleted, err := tx.EventsDelete(ctx, ids)
			if err != nil {
				return err
			}
			n, after, got = len(ids), last, PurgeResult{Events: int64(len(ids)), Deliveries: deleted}
			return queueAudit(ctx, tx, []AuditRecord{purgeRecord(p, got)})
		})
		if err != nil {
			return total, err
		}
		total.Events, total.Deliveries = total.Events+got.Events, total.Deliveries+got.Deliveries
		if n < p.BatchSize {
			return total, nil
		}
	}
}

// purgeRecord describes one purge transaction.
func purgeRecord(p PurgeParams, r PurgeResult) AuditRecord {
	return AuditRecord{Action: AuditPurged, Actor: p.Actor, Resource: "events", Time: p.Now,
		Metadata: map[string]any{"events": r.Events, "deliveries": r.Deliveries, "before": p.Before.UTC().Format(time.RFC3339Nano)}}
}
