package auditoutbox

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/tracing"
)

// Defaults of a Sender's zero fields.
const (
	// DefaultBatch entries are claimed at a time.
	DefaultBatch = 100
	// DefaultClaimTTL: a replica that dies mid-batch holds its entries this long; then another sends them.
	DefaultClaimTTL = time.Minute
	// DefaultRecordTimeout bounds one delivery; no delivery starts that could outlast the claim.
	DefaultRecordTimeout = 5 * time.Second
	// DefaultIdle is how long the sender waits between rounds when the outbox is empty and nothing
	// woke it; failures double the wait up to DefaultMaxBackoff.
	DefaultIdle       = time.Second
	DefaultMaxBackoff = 10 * time.Second
)

// maxReasonBytes bounds a park reason (the audit service's message for it).
const maxReasonBytes = 512

var (
	// The service label comes from code (each service names itself), so the label set is fixed.
	parked = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "audit_outbox_parked_total",
		Help: "Audit outbox entries the audit service refused for good (or that could not be decoded), set aside so the entries behind them go on; by service and gRPC code.",
	}, []string{"service", "code"})
	sent = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "audit_outbox_sent_total",
		Help: "Audit outbox entries the audit service accepted (and that were then deleted), by service.",
	}, []string{"service"})
)

// Sender delivers a service's queued audit events until its context ends. An entry is deleted only after
// the audit service has it; while the audit service is down entries wait in the table and rounds back
// off. Replicas share the table: each claims its batch, so no entry is sent by two replicas at once.
type Sender struct {
	Store Store
	Audit Recorder
	// Service names the service in metrics ("token", "webhook") and log lines.
	Service string
	// Owner names this replica in claims; unique per running sender.
	Owner string
	Log   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Wake, when set, starts a round at once (a write just queued entries); otherwise rounds come at
	// Idle.
	Wake <-chan struct{}
	// Rounds, when set, counts completed rounds (tests wait on it rather than on time).
	Rounds *atomic.Uint64

	// Zero means the default of the same name.
	Batch                   int
	ClaimTTL, RecordTimeout time.Duration
	Idle, MaxBackoff        time.Duration

	tracer trace.Tracer
}

func (s *Sender) defaults() {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.Batch <= 0 {
		s.Batch = DefaultBatch
	}
	if s.ClaimTTL <= 0 {
		s.ClaimTTL = DefaultClaimTTL
	}
	if s.RecordTimeout <= 0 {
		s.RecordTimeout = DefaultRecordTimeout
	}
	if s.Idle <= 0 {
		s.Idle = DefaultIdle
	}
	if s.MaxBackoff < s.Idle {
		s.MaxBackoff = max(DefaultMaxBackoff, s.Idle)
	}
	s.tracer = tracing.Tracer("github.com/sergas/core/internal/auditoutbox")
}

// Run sends until ctx is done, once the recorder is ready.
func (s *Sender) Run(ctx context.Context) {
	s.defaults()
	select {
	case <-ctx.Done():
		return
	case <-s.Audit.Ready():
	}
	wait := s.Idle
	for {
		claimed, failed := s.round(ctx)
		if s.Rounds != nil {
			s.Rounds.Add(1)
		}
		switch {
		case failed:
			wait = min(wait*2, s.MaxBackoff)
		case claimed == s.Batch:
			if ctx.Err() != nil {
				return
			}
			continue // more waiting
		default:
			wait = s.Idle
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.Wake: // a nil channel never fires
		case <-t.C:
		}
		t.Stop()
	}
}

// round claims one batch and sends it in order. It returns how many entries it claimed, and whether a
// delivery failed in a way that retrying may cure (the rest of the batch is then given back). An entry
// the audit service refuses for good is parked, so that it never blocks the ones behind it.
func (s *Sender) round(ctx context.Context) (int, bool) {
	now := s.Now()
	until := now.Add(s.ClaimTTL)
	entries, err := s.Store.OutboxClaim(ctx, ClaimParams{Owner: s.Owner, Now: now, Until: until, Limit: s.Batch})
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("audit outbox: claiming entries failed", "service", s.Service, "error", err.Error())
		}
		return 0, true
	}
	if len(entries) == 0 {
		return 0, false
	}
	// A round with work is a job of its own: a new trace, not a child of the process's start.
	ctx, span := s.tracer.Start(ctx, "audit outbox round", trace.WithNewRoot(), trace.WithAttributes(
		attribute.String("sergas.service", s.Service), attribute.Int("sergas.outbox.entries", len(entries))))
	defer span.End()
	var done, unsent []int64
	failed := false
	for i, e := range entries {
		if failed || ctx.Err() != nil || s.Now().Add(s.RecordTimeout+time.Second).After(until) {
			// Give the rest back rather than send past the claim, when another replica may take it.
			for _, rest := range entries[i:] {
				unsent = append(unsent, rest.ID)
			}
			break
		}
		var req auditv1.RecordEventRequest
		if err := proto.Unmarshal(e.Payload, &req); err != nil {
			s.park(ctx, e, codes.DataLoss, "payload cannot be decoded")
			continue
		}
		req.IdempotencyKey = e.IdempotencyKey
		// The delivery belongs to the trace of the request that queued the event (its client span and the
		// audit service's spans are children of that request's span); the round links to it.
		rctx := ctx
		if sc := takeTraceparent(&req); sc.IsValid() {
			rctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			span.AddLink(trace.Link{SpanContext: sc})
		}
		rctx, cancel := context.WithTimeout(rctx, s.RecordTimeout)
		err := s.Audit.Record(rctx, &req)
		cancel()
		switch code := status.Code(err); {
		case err == nil:
			done = append(done, e.ID)
		case RefusedForGood(code):
			s.park(ctx, e, code, status.Convert(err).Message())
		default:
			failed = true
			unsent = append(unsent, e.ID)
		}
	}
	// What was sent is deleted and what was not is given back even when the service is stopping; if
	// this fails, the claim lapses and the entries are sent again (the idempotency key makes that
	// harmless).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if len(done) > 0 {
		if err := s.Store.OutboxDelete(sctx, done); err != nil {
			failed = true
		} else {
			sent.WithLabelValues(s.Service).Add(float64(len(done)))
		}
	}
	if len(unsent) > 0 {
		_ = s.Store.OutboxRelease(sctx, s.Owner, unsent)
	}
	return len(entries), failed
}

// RefusedForGood reports whether the audit service refused an event in a way no retry can change: the
// event itself is unacceptable (too long an actor, a time outside its window, a conflicting idempotency
// key). Refusals of our credential, overload and outages are retried instead.
func RefusedForGood(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists:
		return true
	}
	return false
}

// park sets e aside with the reason, counts it and logs it; parked entries are never claimed again, so
// this happens once per entry.
func (s *Sender) park(ctx context.Context, e Entry, code codes.Code, reason string) {
	reason = code.String() + ": " + reason
	if len(reason) > maxReasonBytes {
		reason = strings.ToValidUTF8(reason[:maxReasonBytes], "")
	}
	reason = strings.ReplaceAll(strings.ToValidUTF8(reason, "?"), "\x00", "?")
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.Store.OutboxPark(pctx, e.ID, reason, s.Now().UTC().Truncate(time.Microsecond)); err != nil {
		s.Log.Warn("audit outbox: parking a refused entry failed; it is retried later", "service", s.Service, "id", e.ID, "error", err.Error())
		return
	}
	parked.WithLabelValues(s.Service, code.String()).Inc()
	s.Log.Error("audit outbox: the audit service refused an event for good; parked it and went on (see audit_outbox.park_reason)",
		"service", s.Service, "id", e.ID, "idempotency_key", e.IdempotencyKey, "code", code.String(), "reason", reason)
}
