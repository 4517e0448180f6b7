package token

import (
	"context"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auditclient"
	"github.com/sergas/core/internal/auditoutbox"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/services/token/store"
)

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
	e, err := auditoutbox.NewEntryContext(ctx, "token", &auditv1.RecordEventRequest{Actor: actor, Action: action, Resource: k.Provider + "/" + k.ConnectionID,
		Outcome: outcome, OccurTime: timestamppb.New(now), Metadata: m, ActorType: actorType, SourceService: "sergas-token"}, now)
	if err != nil {
		return nil
	}
	return []store.OutboxEntry{e}
}

func (s *Server) wakeOutbox() {
	select {
	case s.outboxReady <- struct{}{}:
	default:
	}
}

// AuditRecorder delivers one event to the audit service.
type AuditRecorder = auditoutbox.Recorder

// sendOutbox delivers queued audit events until ctx is done (see auditoutbox.Sender): deleted once the
// audit service has them, waiting in the table while it is down, parked when it refuses one for good.
func (s *Server) sendOutbox(ctx context.Context, audit AuditRecorder) {
	sender := &auditoutbox.Sender{Store: s.store, Audit: audit, Service: "token", Owner: s.replica,
		Log: s.log, Now: s.now, Wake: s.outboxReady, Rounds: &s.outboxRounds}
	sender.Run(ctx)
}
