// Package audit is the audit service: an append-only, hash-chained event log serving
// sergas.audit.v1.AuditService.
package audit

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/audit/store"
)

// maxPageBytes bounds one ListEvents response, so that a page of large events never exceeds what a
// client receives by default (gRPC's 4 MiB, which the gateway keeps): the page ends early, with a
// next_page_token, instead of failing.
const maxPageBytes = 3 << 20

// Limits bound what RecordEvent accepts.
type Limits struct {
	// MaxClockSkew is how far in the future of the service's clock occur_time may be.
	MaxClockSkew time.Duration
	// MaxEventAge is how far in the past occur_time may be (events delivered late from an outbox).
	MaxEventAge time.Duration
}

// DefaultLimits are the limits without configuration.
var DefaultLimits = Limits{MaxClockSkew: 5 * time.Minute, MaxEventAge: 30 * 24 * time.Hour}

// Server implements auditv1.AuditServiceServer over a Store.
type Server struct {
	auditv1.UnsafeAuditServiceServer
	store  store.Store
	limits Limits
	redact *redactor
	now    func() time.Time
	// checkpoints signs checkpoints (checkpoint_rpcs.go); nil without a signing key.
	checkpoints *checkpointer
	// keys caches the public keys GetSigningKey served from the store.
	keys *knownKeys
	// append stores one checked event: the group committer in the service, the store directly here.
	append func(ctx context.Context, p store.Pending) (store.Result, error)
	// verifications and exports bound the whole-range reads this server runs at once (verify.go,
	// export.go).
	verifications, exports chan struct{}
	// trustedKeys are the key ids whose checkpoints VerifyChain accepts (the signing key's and
	// AUDIT_PREVIOUS_SIGNING_KEY_IDS); nil, for a server without a signing key, accepts each checkpoint's
	// own stored key.
	trustedKeys map[string]bool
}

var _ auditv1.AuditServiceServer = (*Server)(nil)

// NewServer returns a server over s.
func NewServer(s store.Store, limits Limits) *Server {
	srv := &Server{store: s, limits: limits, redact: newRedactor(DefaultRedactKeys), now: time.Now, keys: newKnownKeys(),
		verifications: make(chan struct{}, maxConcurrentVerifications), exports: make(chan struct{}, maxConcurrentExports)}
	srv.append = func(ctx context.Context, p store.Pending) (store.Result, error) { return appendOne(ctx, s, p) }
	return srv
}

// RecordEvent implements auditv1.AuditServiceServer.
func (s *Server) RecordEvent(ctx context.Context, req *auditv1.RecordEventRequest) (*auditv1.RecordEventResponse, error) {
	e, answer, err := s.eventFromRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	// Checked before it joins a batch, so that a bad request fails alone and never reaches the database.
	res, err := s.append(ctx, store.Pending{Event: e, OccurGiven: req.GetOccurTime() != nil})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return &auditv1.RecordEventResponse{Event: recordedProto(res.Event, e.Metadata, answer), Duplicate: res.Duplicate}, nil
}

// recordedProto is toProto for the event RecordEvent stored (or found stored) for a request whose
// metadata encodeMetadata encoded as text from answer: when the stored event holds that text (a new
// event, or a duplicate, whose content must be the same), answer is its metadata, without parsing the
// text back; the answer is the same as GetEvent's.
func recordedProto(stored *store.Event, text string, answer *structpb.Struct) *auditv1.Event {
	if stored.Metadata != text {
		return toProto(stored)
	}
	return eventProto(stored, answer)
}

// GetEvent implements auditv1.AuditServiceServer.
func (s *Server) GetEvent(ctx context.Context, req *auditv1.GetEventRequest) (*auditv1.GetEventResponse, error) {
	// Canonical form: PostgreSQL compares UUIDs whatever their case, SQLite compares the text.
	id, err := validate.UUID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	e, err := s.store.EventGet(ctx, id)
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
	// Filters obey the rules of the fields they match, so that a value no backend can compare (NUL,
	// invalid UTF-8) is refused alike instead of failing in PostgreSQL.
	if err := validate.First(
		validate.Text("actor", req.GetActor(), maxActorBytes, false),
		validate.Text("action", req.GetAction(), maxActionBytes, false),
		validate.Text("resource", req.GetResource(), maxResourceBytes, false),
		validate.Text("session_id", req.GetSessionId(), maxContextBytes, false),
		validate.Text("request_id", req.GetRequestId(), maxContextBytes, false),
		validate.Text("source_service", req.GetSourceService(), maxContextBytes, false),
	); err != nil {
		return nil, err
	}
	p := store.EventListParams{
		Actor: req.GetActor(), Action: req.GetAction(), Resource: req.GetResource(),
		Outcome: int32(req.GetOutcome()), ActorType: int32(req.GetActorType()), SessionID: req.GetSessionId(),
		RequestID: req.GetRequestId(), SourceService: req.GetSourceService(),
		Descending: req.GetDescending(), Limit: size + 1,
	}
	if _, ok := auditv1.Outcome_name[p.Outcome]; !ok {
		return nil, errs.Invalid("outcome is not a known value")
	}
	if _, ok := auditv1.ActorType_name[p.ActorType]; !ok {
		return nil, errs.Invalid("actor_type is not a known value")
	}
	if p.Start, err = timeFilter("start_time", req.GetStartTime()); err != nil {
		return nil, err
	}
	if p.End, err = timeFilter("end_time", req.GetEndTime()); err != nil {
		return nil, err
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
	var z pageSizer
	for i, e := range es {
		pe := toProto(e)
		if !z.fits(e, pe, resp.Events) && i > 0 {
			resp.NextPageToken = pagetoken.EncodeInt(es[i-1].Sequence)
			break
		}
		resp.Events = append(resp.Events, pe)
	}
	return resp, nil
}
