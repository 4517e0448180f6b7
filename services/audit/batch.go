package audit

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// maxBatchEvents bounds one RecordEvents call, as the contract states.
const maxBatchEvents = 1000

// RecordEvents implements auditv1.AuditServiceServer. Every event is checked before anything is
// appended, so that an invalid one fails the call naming its index and never reaches the database.
//
// The batch goes to the store directly, not through the group committer: it is already one transaction,
// and the committer's promise (a failed batch is split so that one bad event fails alone) is the
// opposite of this call's all or nothing. It still takes turns with the committer's batches on the chain
// head's lock, so the chain stays one.
func (s *Server) RecordEvents(ctx context.Context, req *auditv1.RecordEventsRequest) (*auditv1.RecordEventsResponse, error) {
	n := len(req.GetEvents())
	if n == 0 || n > maxBatchEvents {
		return nil, errs.Invalid("events must hold 1 to %d events, not %d", maxBatchEvents, n)
	}
	ps := make([]store.Pending, n)
	answers := make([]*structpb.Struct, n)
	for i, r := range req.GetEvents() {
		e, answer, err := s.eventFromRequest(ctx, r)
		if err != nil {
			return nil, atIndex(i, err)
		}
		ps[i], answers[i] = store.Pending{Event: e, OccurGiven: r.GetOccurTime() != nil}, answer
	}
	res, err := s.store.AppendAll(ctx, ps)
	if err != nil {
		return nil, err
	}
	resp := &auditv1.RecordEventsResponse{Results: make([]*auditv1.RecordEventResponse, n)}
	for i, r := range res {
		resp.Results[i] = &auditv1.RecordEventResponse{
			Event:     recordedProto(r.Event, ps[i].Event.Metadata, answers[i]),
			Duplicate: r.Duplicate,
		}
	}
	return resp, nil
}

// atIndex prefixes a domain error's caller-safe message with the index of the event it concerns.
func atIndex(i int, err error) error {
	var e *errs.Error
	if !errors.As(err, &e) {
		return err
	}
	return &errs.Error{Kind: e.Kind, Msg: fmt.Sprintf("events[%d]: %s", i, e.Msg), Err: e.Err}
}
