package token

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auditclient"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/services/token/store"
)

const (
	// outboxBatch entries are claimed at a time.
	outboxBatch = 100
	// outboxClaimTTL: a replica that dies mid-batch holds its entries this long; then another sends them.
	outboxClaimTTL = time.Minute
	// outboxRecordTimeout bounds one delivery; no delivery starts that could outlast the claim.
	outboxRecordTimeout = 5 * time.Second
)

var outboxParked = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "token_outbox_parked_total",
	Help: "Audit outbox entries the audit service refused for good (or that could not be decoded), set aside so the entries behind them go on; by gRPC code.",
}, []string{"code"})

// outbox builds the audit event for an action, to be queued in the same transaction as the action. The
// idempotency key is fixed now, so that however often delivery is retried the audit log holds it once.
func (s *Server) outbox(ctx context.Context, action string, k store.Key, outcome auditv1.Outcome, meta map[string]any) []store.OutboxEntry {
	// Without a caller the token service acts on its own (the background refresher); a caller's kind
	// (agent or person) is not known here, so it stays unspecified.
	actor, actorType := "sergas-token/"+s.replica, auditv1.ActorType_ACTOR_TYPE_SERVICE
	if p := auth.FromContext(ctx); p != nil {
		actor, actorType = auditclient.Actor(p.ID), auditv1.ActorType_ACTOR_TYPE_UNSPECIFIED
	}
	m, _ := structpb.NewStruct(meta)
	now := s.clock()
	payload, err := proto.Marshal(&auditv1.RecordEventRequest{Actor: actor, Action: action, Resource: k.Provider + "/" + k.ConnectionID,
		Outcome: outcome, OccurTime: timestamppb.New(now), Metadata: m, ActorType: actorType, SourceService: "sergas-token"})
	if err != nil {
		return nil
	}
	return []store.OutboxEntry{{IdempotencyKey: "token-" + uuid.NewString(), Payload: payload, CreateTime: now}}
}

func (s *Server) wakeOutbox() {
	select {
	case s.outboxReady <- struct{}{}:
	default:
	}
}

// AuditRecorder delivers one event to the audit service.
type AuditRecorder interface {
	Record(ctx context.Context, req *auditv1.RecordEventRequest) error
	Ready() <-chan struct{}
}

// sendOutbox delivers queued audit events until ctx is done. An event is deleted only after the audit
// service has it; while the audit service is down events wait in the table, and retries back off.
// Replicas share the table: each claims its batch, so no event is sent by two replicas at once.
func (s *Server) sendOutbox(ctx context.Context, audit AuditRecorder) {
	select {
	case <-ctx.Done():
		return
	case <-audit.Ready():
	}
	wait := time.Second
	for {
		claimed, failed := s.deliverOutbox(ctx, audit)
		s.outboxRounds.Add(1)
		switch {
		case failed:
			wait = min(wait*2, 10*time.Second)
		case claimed == outboxBatch:
			continue // more waiting
		default:
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-s.outboxReady:
		case <-time.After(wait):
		}
	}
}

// deliverOutbox claims one batch and sends it in order. It returns how many entries it claimed, and
// whether a delivery failed in a way that retrying may cure (the rest of the batch is then given back).
// An entry the audit service refuses for good is parked, so that it never blocks the ones behind it.
func (s *Server) deliverOutbox(ctx context.Context, audit AuditRecorder) (int, bool) {
	now := s.now()
	until := now.Add(outboxClaimTTL)
	entries, err := s.store.OutboxClaim(ctx, store.OutboxClaimParams{Owner: s.replica, Now: now, Until: until, Limit: outboxBatch})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("audit outbox: claiming entries failed", "error", err.Error())
		}
		return 0, true
	}
	var done, unsent []int64
	failed := false
	for i, e := range entries {
		if failed || ctx.Err() != nil || s.now().Add(outboxRecordTimeout+time.Second).After(until) {
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
		rctx, cancel := context.WithTimeout(ctx, outboxRecordTimeout)
		err := audit.Record(rctx, &req)
		cancel()
		switch code := status.Code(err); {
		case err == nil:
			done = append(done, e.ID)
		case refusedForGood(code):
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
		if err := s.store.OutboxDelete(sctx, done); err != nil {
			failed = true
		}
	}
	if len(unsent) > 0 {
		_ = s.store.OutboxRelease(sctx, s.replica, unsent)
	}
	return len(entries), failed
}

// refusedForGood reports whether the audit service refused an event in a way no retry can change: the
// event itself is unacceptable (too long an actor, a time outside its window, a conflicting idempotency
// key). Refusals of our credential, overload and outages are retried instead.
func refusedForGood(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.AlreadyExists:
		return true
	}
	return false
}

// park sets e aside with the reason, counts it and logs it; parked entries are never claimed again, so
// this happens once per entry.
func (s *Server) park(ctx context.Context, e store.OutboxEntry, code codes.Code, reason string) {
	reason = code.String() + ": " + reason
	if len(reason) > 512 {
		reason = strings.ToValidUTF8(reason[:512], "")
	}
	reason = strings.ReplaceAll(strings.ToValidUTF8(reason, "?"), "\x00", "?")
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.OutboxPark(pctx, e.ID, reason, s.clock()); err != nil {
		s.log.Warn("audit outbox: parking a refused entry failed; it is retried later", "id", e.ID, "error", err.Error())
		return
	}
	outboxParked.WithLabelValues(code.String()).Inc()
	s.log.Error("audit outbox: the audit service refused an event for good; parked it and went on (see audit_outbox.park_reason)",
		"id", e.ID, "idempotency_key", e.IdempotencyKey, "code", code.String(), "reason", reason)
}
