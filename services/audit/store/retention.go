package store

import (
	"context"
	"time"

	"github.com/sergas/core/internal/errs"
)

// RetentionTx is one batch of retention, in SQL: inside it the chain head is locked, the anchor moves
// forward and the events at or below it are deleted. The append-only guards of both backends refuse a
// delete above the anchor and an anchor that moves backward, to a hash that is not stored, or onto the
// head; this is the only path that passes them.
type RetentionTx interface {
	// ChainStateForUpdate reads the head and the anchor and keeps the head locked until the transaction
	// ends (appends wait).
	ChainStateForUpdate(ctx context.Context) (ChainState, error)
	// PrefixEnd returns the last sequence e in [after, upTo] such that every stored event in (after, e]
	// was recorded before cutoff: upTo when all were, after when the first was not.
	PrefixEnd(ctx context.Context, after, upTo int64, cutoff time.Time) (int64, error)
	// EventHash returns the stored hash of the event at seq, errs.ErrNotFound when there is none.
	EventHash(ctx context.Context, seq int64) ([]byte, error)
	// MoveAnchor sets the anchor to (seq, hash).
	MoveAnchor(ctx context.Context, seq int64, hash []byte) error
	// DeleteThrough deletes the events in (after, through] and returns how many it deleted.
	DeleteThrough(ctx context.Context, after, through int64) (int64, error)
}

// Cut is what one retention batch removed: the events in (From, Through], of which Through is the new
// anchor with hash AnchorHash. Removed is 0 when nothing was old enough.
type Cut struct {
	From, Through int64
	Removed       int64
	AnchorHash    []byte
	// More is true when the batch was full: older events may remain.
	More bool
}

// RetentionCut removes, in one transaction, at most batch of the oldest retained events recorded before
// cutoff. Only a prefix of the chain is removed, so that the rest stays contiguous: the cut stops at the
// first event recorded at or after cutoff (record times follow sequence numbers only as closely as the
// replicas' clocks agree, so an old event after a newer one waits for the next run). The head event is
// never removed, so the head always has a row. Before deleting, the anchor moves to the last event
// removed; an event missing in the range (a gap someone made in the database) fails the batch and
// nothing is removed, so that retention never destroys the evidence VerifyChain would report.
func (s *Log) RetentionCut(ctx context.Context, cutoff time.Time, batch int64) (Cut, error) {
	var cut Cut
	err := s.d.RetentionTx(ctx, func(tx RetentionTx) error {
		cut = Cut{}
		st, err := tx.ChainStateForUpdate(ctx)
		if err != nil {
			return err
		}
		cut.From, cut.Through, cut.AnchorHash = st.AnchorSeq, st.AnchorSeq, st.AnchorHash
		upTo := min(st.AnchorSeq+batch, st.HeadSeq-1)
		if upTo <= st.AnchorSeq {
			return nil
		}
		end, err := tx.PrefixEnd(ctx, st.AnchorSeq, upTo, cutoff)
		if err != nil || end <= st.AnchorSeq {
			return err
		}
		hash, err := tx.EventHash(ctx, end)
		if errs.KindOf(err) == errs.KindNotFound {
			return errs.New(errs.KindFailedPrecondition, "audit event %d is missing: the chain has a gap; retention stopped (run VerifyChain)", end)
		}
		if err != nil {
			return err
		}
		if err := tx.MoveAnchor(ctx, end, hash); err != nil {
			return err
		}
		n, err := tx.DeleteThrough(ctx, st.AnchorSeq, end)
		if err != nil {
			return err
		}
		if n != end-st.AnchorSeq {
			return errs.New(errs.KindFailedPrecondition, "audit events %d to %d: %d stored of %d; the chain has a gap; retention stopped (run VerifyChain)",
				st.AnchorSeq+1, end, n, end-st.AnchorSeq)
		}
		cut = Cut{From: st.AnchorSeq, Through: end, Removed: n, AnchorHash: hash, More: end == st.AnchorSeq+batch}
		return nil
	})
	if err != nil {
		return Cut{}, err
	}
	return cut, nil
}
