package audit

import (
	"context"
	"google.golang.org/protobuf/types/known/structpb"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/tracing"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/audit/store"
)

// Field limits, in bytes, as the contract states them.
const (
	maxActorBytes     = 256
	maxActionBytes    = 128
	maxResourceBytes  = 512
	maxKeyBytes       = 128
	maxPrincipalBytes = 1024
	// maxContextBytes bounds session_id, request_id and source_service: identifiers, not prose.
	maxContextBytes = 128
)

// anonymous is the principal of events written without authentication (AUTH_DISABLED=true), as the
// auth package names such callers.
const anonymous = "anonymous"

// eventFromRequest checks req and builds the event to append, written by the caller of ctx.
func (s *Server) eventFromRequest(ctx context.Context, req *auditv1.RecordEventRequest) (*store.Event, *structpb.Struct, error) {
	// Actor, action and resource are shown to people in lists and logs: no control characters, which
	// could forge line breaks or terminal escapes.
	if err := validate.First(
		validate.Label("actor", req.GetActor(), maxActorBytes, true),
		validate.Label("action", req.GetAction(), maxActionBytes, true),
		validate.Label("resource", req.GetResource(), maxResourceBytes, false),
		validate.Text("idempotency_key", req.GetIdempotencyKey(), maxKeyBytes, false),
		validate.Label("session_id", req.GetSessionId(), maxContextBytes, false),
		validate.Label("request_id", req.GetRequestId(), maxContextBytes, false),
		validate.Label("source_service", req.GetSourceService(), maxContextBytes, false),
	); err != nil {
		return nil, nil, err
	}
	// Unspecified is allowed: callers written before actor types existed do not set it.
	if _, ok := auditv1.ActorType_name[int32(req.GetActorType())]; !ok {
		return nil, nil, errs.Invalid("actor_type is not a known value: AGENT, USER, SERVICE or unspecified")
	}
	if _, ok := auditv1.Outcome_name[int32(req.GetOutcome())]; !ok || req.GetOutcome() == auditv1.Outcome_OUTCOME_UNSPECIFIED {
		return nil, nil, errs.Invalid("outcome is required: SUCCESS, FAILURE or DENIED")
	}
	principal := anonymous
	if p := auth.FromContext(ctx); p != nil {
		principal = p.ID
	}
	if validate.Text("principal", principal, maxPrincipalBytes, true) != nil {
		// The credential names itself; the caller cannot fix it by changing the request.
		return nil, nil, errs.New(errs.KindFailedPrecondition, "the caller's identity cannot be recorded (at most %d bytes of UTF-8 without NUL)", maxPrincipalBytes)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	occur, err := s.occurTime(req.GetOccurTime(), now)
	if err != nil {
		return nil, nil, err
	}
	meta, answer, err := encodeMetadata(req.GetMetadata(), s.redact)
	if err != nil {
		return nil, nil, err
	}
	return &store.Event{
		ID: uuid.Must(uuid.NewV7()).String(), OccurTime: occur, RecordTime: now,
		Actor: req.GetActor(), Action: req.GetAction(), Resource: req.GetResource(),
		Outcome: int32(req.GetOutcome()), Metadata: meta, IdempotencyKey: req.GetIdempotencyKey(),
		Principal: principal, ActorType: int32(req.GetActorType()), SessionID: req.GetSessionId(),
		RequestID: requestID(ctx, req), SourceService: req.GetSourceService(),
	}, answer, nil
}

// requestID is the request_id to record: the caller's, or, when it sent none, the trace id of the call
// (its traceparent's, or the one this service gave the call), so that the event leads to the request's
// log lines and spans. It is set before the event is sealed, as a caller's is, so the hash covers it.
// An event with an idempotency key keeps the caller's choice, even none: a retry may come in another
// trace, and a request_id that changed would make the retry a different event (AlreadyExists).
func requestID(ctx context.Context, req *auditv1.RecordEventRequest) string {
	if id := req.GetRequestId(); id != "" || req.GetIdempotencyKey() != "" {
		return id
	}
	return tracing.TraceID(ctx)
}

// occurTime returns the caller's occur_time, or now without one. It must lie in
// [now - MaxEventAge, now + MaxClockSkew]: a time far from now is a client bug (a zero value, seconds
// taken for milliseconds) or an attempt to hide an event among old ones, and either way misleads
// whoever reads the log by time.
func (s *Server) occurTime(ts *timestamppb.Timestamp, now time.Time) (time.Time, error) {
	if ts == nil {
		return now, nil
	}
	if ts.CheckValid() != nil {
		return time.Time{}, errs.Invalid("occur_time is not a valid timestamp")
	}
	t := ts.AsTime().UTC().Truncate(time.Microsecond)
	switch {
	case t.After(now.Add(s.limits.MaxClockSkew)):
		return time.Time{}, errs.Invalid("occur_time must not be more than %s after the service's clock", s.limits.MaxClockSkew)
	case t.Before(now.Add(-s.limits.MaxEventAge)):
		return time.Time{}, errs.Invalid("occur_time must not be more than %s before the service's clock", s.limits.MaxEventAge)
	}
	return t, nil
}

// timeFilter returns a ListEvents time bound (zero when not given). Any valid timestamp works as a
// bound, from year 1 to 9999; only out-of-range ones are refused.
func timeFilter(name string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if ts.CheckValid() != nil {
		return time.Time{}, errs.Invalid("%s is not a valid timestamp (years 1 to 9999)", name)
	}
	return ts.AsTime(), nil
}
