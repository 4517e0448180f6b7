package store

import (
	"context"
	"time"

	"github.com/sergas/core/internal/errs"
)

// ReplayBatch is how many events one replay transaction reads and one purge transaction deletes unless
// PurgeParams says otherwise: a range of any size is replayed or purged in transactions of this size, so
// that none holds its locks (or SQLite's single writer) for long.
const ReplayBatch = 500

// EventCursor is a position in (receive time, seq) order, the order of the events_receive_time index
// (migration 0009) that replay and purge read: a page starts after the last event of the one before.
type EventCursor struct {
	ReceiveTime time.Time
	Seq         int64
}

// ReplayPageParams reads the next page of a range replay: at most Limit events received before To (zero:
// no bound) and after After, in (receive time, seq) order.
type ReplayPageParams struct {
	SubscriptionID string
	To             time.Time
	After          EventCursor
	Limit          int
}

// ReplayPage is a page of a range replay: the events of the page the subscription's filter matches, how
// many events the page read, and the position of the last one.
type ReplayPage struct {
	Matched []string
	Read    int
	Last    EventCursor
}

// ReplayDriver is what a backend supplies for replay and purge outside a transaction: nothing, all of it
// runs in delivery transactions (ReplayTx).
type ReplayDriver interface{}

// ReplayTx is the replay and purge part of a delivery transaction. Row locks (PostgreSQL): a replay
// locks its subscription (FOR KEY SHARE, as fan-out does, so that SubscriptionDelete waits for the
// deliveries it makes), then its events (FOR KEY SHARE, so that a purge cannot delete them under it),
// then deliveries in id order, then events to settle them (EventsSettle). A purge locks events FOR UPDATE
// SKIP LOCKED (it never waits for an event: one a replay holds is left for the next purge), then their
// deliveries in id order, so that neither waits for the other in a cycle.
type ReplayTx interface {
	// SubscriptionKeyShare reports whether subscription id exists, and on PostgreSQL locks it FOR KEY
	// SHARE until the transaction ends.
	SubscriptionKeyShare(ctx context.Context, id string) (bool, error)
	// EventsKeyShare returns those of the events ids that exist, locked FOR KEY SHARE on PostgreSQL (in
	// (receive time, seq) order).
	EventsKeyShare(ctx context.Context, ids []string) ([]string, error)
	// ReplayPage reads the next page of a range replay (see ReplayPageParams), matching each event with
	// the fan-out's filter predicate. It locks nothing.
	ReplayPage(ctx context.Context, p ReplayPageParams) (ReplayPage, error)
	// DeliveriesReplay makes the deliveries of subscription to the events ids pending at now: those
	// delivered or dead letters get attempt count 0 (their lease, and so the numbering of their attempts,
	// goes on), and events without one get a new delivery (its source and receive time the event's).
	// Deliveries pending, leased or failed are left alone. It returns the ids of the events whose
	// delivery it changed or made.
	DeliveriesReplay(ctx context.Context, subscriptionID string, ids []string, now time.Time) ([]string, error)
	// EventsPurgeable returns, locked FOR UPDATE SKIP LOCKED on PostgreSQL, at most limit delivered events
	// received before before, after after in (receive time, seq) order, none of whose deliveries is other
	// than delivered, and the position of the last one.
	EventsPurgeable(ctx context.Context, before time.Time, after EventCursor, limit int) ([]string, EventCursor, error)
	// EventsDelete deletes the events ids with their deliveries and the deliveries' attempts, and returns
	// how many deliveries it deleted.
	EventsDelete(ctx context.Context, ids []string) (int64, error)
}

// DeliveryReplay implements DeliveryStore. One event is replayed in one transaction; a range, page by
// page (ReplayBatch events each, in receive order), each page in its own transaction with its own audit
// record, so that a range of any size holds no transaction long and what committed is recorded with it.
// When ctx ends between pages, the pages done stay done and their counts are returned with ctx's error.
func (s Deliveries) DeliveryReplay(ctx context.Context, p ReplayParams) (ReplayResult, error) {
	if !canonicalID(p.SubscriptionID) {
		return ReplayResult{}, subscriptionNotFound(p.SubscriptionID)
	}
	p.Now, p.From, p.To = micro(p.Now), micro(p.From), micro(p.To)
	if p.EventID != "" {
		if !canonicalID(p.EventID) {
			return ReplayResult{}, eventNotFound(p.EventID)
		}
		return s.replayOne(ctx, p)
	}
	if !p.To.IsZero() && !p.From.Before(p.To) {
		return ReplayResult{}, errs.Invalid("replay range must start before it ends")
	}
	var total ReplayResult
	after := EventCursor{ReceiveTime: p.From} // seqs start at 1: the first page starts at From
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var page ReplayPage
		var got ReplayResult
		err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
			if err := keyShare(ctx, tx, p.SubscriptionID); err != nil {
				return err
			}
			var err error
			page, err = tx.ReplayPage(ctx, ReplayPageParams{SubscriptionID: p.SubscriptionID, To: p.To, After: after, Limit: ReplayBatch})
			if err != nil {
				return err
			}
			got, err = replay(ctx, tx, p, page.Matched)
			return err
		})
		if err != nil {
			return total, err
		}
		total.Replayed, total.Skipped = total.Replayed+got.Replayed, total.Skipped+got.Skipped
		if page.Read < ReplayBatch {
			return total, nil
		}
		after = page.Last
	}
}

// replayOne replays event p.EventID, whatever the subscription's filter says.
func (s Deliveries) replayOne(ctx context.Context, p ReplayParams) (ReplayResult, error) {
	var out ReplayResult
	err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		if err := keyShare(ctx, tx, p.SubscriptionID); err != nil {
			return err
		}
		var err error
		out, err = replay(ctx, tx, p, []string{p.EventID})
		// A stored event is counted, replayed or skipped: nothing counted means it is not stored.
		if err == nil && out == (ReplayResult{}) {
			return eventNotFound(p.EventID)
		}
		return err
	})
	if err != nil {
		return ReplayResult{}, err
	}
	return out, nil
}

// keyShare checks that the subscription exists and keeps it from being deleted until the transaction
// ends.
func keyShare(ctx context.Context, tx DeliveryTx, id string) error {
	ok, err := tx.SubscriptionKeyShare(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return subscriptionNotFound(id)
	}
	return nil
}

// replay makes the deliveries of the events ids to p's subscription pending, settles the events and
// queues the audit record. Events no longer stored (purged meanwhile) are not counted.
func replay(ctx context.Context, tx DeliveryTx, p ReplayParams, ids []string) (ReplayResult, error) {
	if len(ids) == 0 {
		return ReplayResult{}, nil
	}
	ids, err := tx.EventsKeyShare(ctx, ids)
	if err != nil || len(ids) == 0 {
		return ReplayResult{}, err
	}
	changed, err := tx.DeliveriesReplay(ctx, p.SubscriptionID, ids, p.Now)
	if err != nil {
		return ReplayResult{}, err
	}
	out := ReplayResult{Replayed: int64(len(changed)), Skipped: int64(len(ids) - len(changed))}
	if out.Replayed == 0 {
		return out, nil
	}
	if err := queueAudit(ctx, tx, []AuditRecord{replayRecord(p, out)}); err != nil {
		return ReplayResult{}, err
	}
	return out, settle(ctx, tx, changed, p.Now)
}

// replayRecord describes one replay transaction: what it replayed and skipped, and the event or range
// asked for (a range's later pages each have their own record).
func replayRecord(p ReplayParams, r ReplayResult) AuditRecord {
	m := map[string]any{"replayed": r.Replayed, "skipped": r.Skipped}
	if p.EventID != "" {
		m["event_id"] = p.EventID
	} else {
		m["start_time"] = p.From.UTC().Format(time.RFC3339Nano)
		if !p.To.IsZero() {
			m["end_time"] = p.To.UTC().Format(time.RFC3339Nano)
		}
	}
	return AuditRecord{Action: AuditReplayed, Actor: p.Actor, Resource: "subscriptions/" + p.SubscriptionID, Time: p.Now, Metadata: m}
}

func eventNotFound(id string) error { return errs.NotFound("event %s not found", id) }
