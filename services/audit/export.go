package audit

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/services/audit/store"
)

// exportPageEvents is how many events ExportEvents reads in one query. Each page is one short read: no
// transaction or connection stays open while a slow client drains the stream, and the memory an export
// holds is one page (at most 256 events of 64 KiB metadata), whatever the range.
const exportPageEvents = 256

// maxConcurrentExports bounds the exports one server runs at once.
const maxConcurrentExports = 4

// ExportEvents implements auditv1.AuditServiceServer: the events of the range in sequence order, each with
// the exact hash input (hash_version, metadata_json), then the checkpoints signed within the range.
//
// The range is fixed when the export starts (the head then, for an open end), so that events appended
// meanwhile do not make it run forever. A failure after the first message ends the stream with an error
// status (over REST, a last line {"error": ...}); a complete export ends with OK.
func (s *Server) ExportEvents(req *auditv1.ExportEventsRequest, stream auditv1.AuditService_ExportEventsServer) error {
	// Each export reads the whole range, and audit:read is the only gate: a few run at once per server,
	// and a call beyond them is told when to retry rather than queued behind exports that may be held
	// open by slow readers.
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	default:
		return ratelimit.RetryError(codes.ResourceExhausted, fmt.Sprintf("%d exports are running, the most this service runs at once", maxConcurrentExports), 5*time.Second)
	}
	ctx := stream.Context()
	from, to, err := s.exportRange(ctx, req)
	if err != nil {
		return err
	}
	if from > to {
		return nil // nothing in range: an empty export
	}
	for after := from - 1; after < to; {
		es, err := s.store.EventList(ctx, store.EventListParams{After: after, Limit: int(min(exportPageEvents, to-after))})
		if err != nil {
			return err
		}
		// The export sends what is stored, gaps included, for the reader to find: a missing event (deleted
		// in the database, or removed by retention racing ahead of this export) shows as a jump in the
		// sequences or, here, as an export that ends short.
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.Sequence > to {
				break
			}
			if err := stream.Send(&auditv1.ExportEventsResponse{Item: &auditv1.ExportEventsResponse_Event{Event: exportProto(e)}}); err != nil {
				return err
			}
		}
		after = es[len(es)-1].Sequence
	}
	return s.exportCheckpoints(ctx, stream, from, to)
}

// exportRange resolves the request to the sequences [from, to] it names (from > to: none).
func (s *Server) exportRange(ctx context.Context, req *auditv1.ExportEventsRequest) (from, to int64, err error) {
	bySeq := req.GetStartSequence() != 0 || req.GetEndSequence() != 0
	byTime := req.GetStartTime() != nil || req.GetEndTime() != nil
	switch {
	case bySeq && byTime:
		return 0, 0, errs.Invalid("give a sequence range or a time range, not both")
	case req.GetStartSequence() < 0 || req.GetEndSequence() < 0:
		return 0, 0, errs.Invalid("start_sequence and end_sequence must not be negative")
	case req.GetEndSequence() != 0 && req.GetStartSequence() > req.GetEndSequence():
		return 0, 0, errs.Invalid("start_sequence must not be after end_sequence")
	}
	start, err := timeFilter("start_time", req.GetStartTime())
	if err != nil {
		return 0, 0, err
	}
	end, err := timeFilter("end_time", req.GetEndTime())
	if err != nil {
		return 0, 0, err
	}
	if !start.IsZero() && !end.IsZero() && start.After(end) {
		return 0, 0, errs.Invalid("start_time must not be after end_time")
	}
	cs, err := s.store.ChainState(ctx)
	if err != nil {
		return 0, 0, err
	}
	// Retention removes events up to the anchor (never the head); the head and the anchor are read
	// together. An empty log has first 1 and head 0: every range in it is empty.
	first, head := cs.AnchorSeq+1, cs.HeadSeq
	if byTime {
		return s.timeRange(ctx, first, head, start, end)
	}
	from, to = req.GetStartSequence(), req.GetEndSequence()
	// A range the log does not hold is refused rather than cut to what it holds, so that an export that
	// ends well always holds every sequence asked for. A start after the head exports nothing: an
	// incremental export asks from the last sequence it holds + 1.
	if from != 0 && from < first {
		return 0, 0, errs.New(errs.KindFailedPrecondition, "start_sequence %d was removed by retention; the first retained event is %d", from, first)
	}
	if to > head {
		return 0, 0, errs.New(errs.KindFailedPrecondition, "end_sequence %d is beyond the chain head %d", to, head)
	}
	if from == 0 {
		from = first
	}
	if to == 0 {
		to = head
	}
	return from, to, nil
}

// timeRange finds the sequences of the events recorded in [start, end) by bisection over sequence
// numbers (one indexed point read per step). record_time is taken when a request arrives and the
// sequence when its batch commits, so record times rise with sequence only up to the differences
// between concurrent callers and between replicas' clocks, and a clock stepped back makes them fall.
// The export is still one contiguous run of sequences, which a reader can verify as a chain: it starts
// at a sequence where record times cross start_time and ends before one where they cross end_time, so
// an event near a bound may fall on the other side of it by that difference.
func (s *Server) timeRange(ctx context.Context, first, head int64, start, end time.Time) (from, to int64, err error) {
	from, to = first, head
	if !start.IsZero() {
		if from, err = s.firstRecordedAt(ctx, first, head, start); err != nil {
			return 0, 0, err
		}
	}
	if !end.IsZero() {
		next, err := s.firstRecordedAt(ctx, first, head, end)
		if err != nil {
			return 0, 0, err
		}
		to = next - 1
	}
	return from, to, nil
}

// firstRecordedAt returns the lowest sequence in [lo, hi] recorded at or after t (hi+1 when none is),
// assuming record times rise with sequence (see timeRange).
func (s *Server) firstRecordedAt(ctx context.Context, lo, hi int64, t time.Time) (int64, error) {
	hi++ // the answer lies in [lo, hi]; hi means "none"
	for lo < hi {
		mid := lo + (hi-lo)/2
		es, err := s.store.EventList(ctx, store.EventListParams{After: mid - 1, Limit: 1})
		if err != nil {
			return 0, err
		}
		if len(es) == 0 || !es[0].RecordTime.Before(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// exportCheckpoints sends the signed checkpoints whose sequence lies in [from, to], oldest first, in
// pages as the events.
func (s *Server) exportCheckpoints(ctx context.Context, stream auditv1.AuditService_ExportEventsServer, from, to int64) error {
	var after int64
	for {
		cs, err := s.store.CheckpointList(ctx, store.CheckpointListParams{AfterID: after, FromSeq: from, ToSeq: to, Ascending: true, Limit: exportPageEvents})
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := stream.Send(&auditv1.ExportEventsResponse{Item: &auditv1.ExportEventsResponse_Checkpoint{Checkpoint: checkpointToProto(c)}}); err != nil {
				return err
			}
		}
		if len(cs) < exportPageEvents {
			return nil
		}
		after = cs[len(cs)-1].ID
	}
}
