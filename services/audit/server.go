// Package audit is the audit service: an append-only, hash-chained event log serving
// sergas.audit.v1.AuditService.
package audit

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/audit/store"
)

const maxMetadataBytes = 64 << 10

// Server implements auditv1.AuditServiceServer over a Store.
type Server struct {
	auditv1.UnsafeAuditServiceServer
	store store.Store
	now   func() time.Time
}

var _ auditv1.AuditServiceServer = (*Server)(nil)

// NewServer returns a server over s.
func NewServer(s store.Store) *Server { return &Server{store: s, now: time.Now} }

// RecordEvent implements auditv1.AuditServiceServer.
func (s *Server) RecordEvent(ctx context.Context, req *auditv1.RecordEventRequest) (*auditv1.RecordEventResponse, error) {
	e, err := s.eventFromRequest(req)
	if err != nil {
		return nil, err
	}
	stored, dup, err := s.store.EventAppend(ctx, e)
	if err != nil {
		return nil, err
	}
	return &auditv1.RecordEventResponse{Event: toProto(stored), Duplicate: dup}, nil
}

func (s *Server) eventFromRequest(req *auditv1.RecordEventRequest) (*store.Event, error) {
	if err := validate.First(
		validate.Text("actor", req.GetActor(), 256, true),
		validate.Text("action", req.GetAction(), 128, true),
		validate.Text("resource", req.GetResource(), 512, false),
		validate.Text("idempotency_key", req.GetIdempotencyKey(), 128, false),
	); err != nil {
		return nil, err
	}
	if _, ok := auditv1.Outcome_name[int32(req.GetOutcome())]; !ok || req.GetOutcome() == auditv1.Outcome_OUTCOME_UNSPECIFIED {
		return nil, errs.Invalid("outcome is required: SUCCESS, FAILURE or DENIED")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	occur := now
	if req.GetOccurTime() != nil {
		if err := req.GetOccurTime().CheckValid(); err != nil {
			return nil, errs.Invalid("occur_time is not a valid timestamp")
		}
		occur = req.GetOccurTime().AsTime().UTC().Truncate(time.Microsecond)
	}
	meta, err := canonicalJSON(req.GetMetadata())
	if err != nil {
		return nil, err
	}
	return &store.Event{
		ID: uuid.Must(uuid.NewV7()).String(), OccurTime: occur, RecordTime: now,
		Actor: req.GetActor(), Action: req.GetAction(), Resource: req.GetResource(),
		Outcome: int32(req.GetOutcome()), Metadata: meta, IdempotencyKey: req.GetIdempotencyKey(),
	}, nil
}

// canonicalJSON encodes metadata with sorted keys and no spaces, so the stored text (which the hash
// covers) does not depend on how the caller's client serialised it.
func canonicalJSON(m *structpb.Struct) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m.AsMap())
	if err != nil {
		return "", errs.Invalid("metadata cannot be encoded as JSON")
	}
	if len(b) > maxMetadataBytes {
		return "", errs.Invalid("metadata must be at most %d bytes as JSON", maxMetadataBytes)
	}
	return string(b), nil
}

// GetEvent implements auditv1.AuditServiceServer.
func (s *Server) GetEvent(ctx context.Context, req *auditv1.GetEventRequest) (*auditv1.GetEventResponse, error) {
	if _, err := uuid.Parse(req.GetId()); err != nil {
		return nil, errs.Invalid("id must be an event id (UUID)")
	}
	e, err := s.store.EventGet(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &auditv1.GetEventResponse{Event: toProto(e)}, nil
}

// ListEvents implements auditv1.AuditServiceServer.
func (s *Server) ListEvents(ctx context.Context, req *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	p := store.EventListParams{
		Actor: req.GetActor(), Action: req.GetAction(), Resource: req.GetResource(),
		Outcome: int32(req.GetOutcome()), Descending: req.GetDescending(), Limit: size + 1,
	}
	if _, ok := auditv1.Outcome_name[p.Outcome]; !ok {
		return nil, errs.Invalid("outcome is not a known value")
	}
	for name, ts := range map[string]*timestamppb.Timestamp{"start_time": req.GetStartTime(), "end_time": req.GetEndTime()} {
		if ts != nil && ts.CheckValid() != nil {
			return nil, errs.Invalid("%s is not a valid timestamp", name)
		}
	}
	if req.GetStartTime() != nil {
		p.Start = req.GetStartTime().AsTime()
	}
	if req.GetEndTime() != nil {
		p.End = req.GetEndTime().AsTime()
	}
	if p.After, _, err = pagetoken.DecodeInt(req.GetPageToken()); err != nil {
		return nil, err
	}
	es, err := s.store.EventList(ctx, p)
	if err != nil {
		return nil, err
	}
	resp := &auditv1.ListEventsResponse{}
	es, resp.NextPageToken = pagetoken.Page(es, size, func(e *store.Event) string { return pagetoken.EncodeInt(e.Sequence) })
	for _, e := range es {
		resp.Events = append(resp.Events, toProto(e))
	}
	return resp, nil
}

func toProto(e *store.Event) *auditv1.Event {
	var meta map[string]any
	_ = json.Unmarshal([]byte(e.Metadata), &meta) // written by canonicalJSON, so always an object
	m, _ := structpb.NewStruct(meta)
	return &auditv1.Event{
		Id: e.ID, Sequence: e.Sequence,
		OccurTime: timestamppb.New(e.OccurTime), RecordTime: timestamppb.New(e.RecordTime),
		Actor: e.Actor, Action: e.Action, Resource: e.Resource, Outcome: auditv1.Outcome(e.Outcome),
		Metadata: m, IdempotencyKey: e.IdempotencyKey, PreviousHash: e.PreviousHash, Hash: e.Hash,
	}
}
