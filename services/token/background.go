package token

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/services/token/store"
)

// outbox builds the audit event for an action, to be queued in the same transaction as the action. The
// idempotency key is fixed now, so that however often delivery is retried the audit log holds it once.
func (s *Server) outbox(ctx context.Context, action string, k store.Key, outcome auditv1.Outcome, meta map[string]any) []store.OutboxEntry {
	actor := "sergas-token/" + s.replica
	if p := auth.FromContext(ctx); p != nil {
		actor = p.ID
	}
	m, _ := structpb.NewStruct(meta)
	now := s.clock()
	payload, err := proto.Marshal(&auditv1.RecordEventRequest{Actor: actor, Action: action, Resource: k.Provider + "/" + k.ConnectionID,
		Outcome: outcome, OccurTime: timestamppb.New(now), Metadata: m})
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
func (s *Server) sendOutbox(ctx context.Context, audit AuditRecorder) {
	select {
	case <-ctx.Done():
		return
	case <-audit.Ready():
	}
	wait := time.Second
	for {
		delivered, failed := s.deliverOutbox(ctx, audit)
		switch {
		case failed:
			wait = min(wait*2, 10*time.Second)
		case delivered == 100:
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

func (s *Server) deliverOutbox(ctx context.Context, audit AuditRecorder) (int, bool) {
	entries, err := s.store.OutboxList(ctx, 100)
	if err != nil {
		return 0, true
	}
	var done []int64
	failed := false
	for _, e := range entries {
		var req auditv1.RecordEventRequest
		if err := proto.Unmarshal(e.Payload, &req); err != nil {
			s.log.Error("dropping an undecodable audit outbox entry", "id", e.ID)
			done = append(done, e.ID)
			continue
		}
		req.IdempotencyKey = e.IdempotencyKey
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := audit.Record(rctx, &req)
		cancel()
		if err != nil {
			failed = true
			break
		}
		done = append(done, e.ID)
	}
	if len(done) > 0 {
		if err := s.store.OutboxDelete(ctx, done); err != nil {
			return 0, true // delivered again later; the idempotency keys make that harmless
		}
	}
	return len(done), failed
}

// refreshAhead refreshes connections before they expire, without being asked: every interval it looks
// for tokens expiring within the margin plus one interval, and refreshes them with jitter and at most
// RefresherConcurrency at a time. The lease makes each refresh happen on one replica only.
func (s *Server) refreshAhead(ctx context.Context) {
	if s.cfg.RefresherInterval <= 0 {
		return
	}
	sem := make(chan struct{}, s.cfg.RefresherConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		jitter := time.Duration(rand.Float64() * float64(s.cfg.RefresherInterval) / 5)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.RefresherInterval - jitter):
		}
		now := s.now()
		lookahead := s.cfg.RefreshMargin + s.cfg.RefresherInterval
		keys, err := s.store.ConnectionsDue(ctx, now.Add(lookahead), now, 100)
		if err != nil {
			s.log.Warn("background refresher could not list due connections", "error", err.Error())
			continue
		}
		for _, k := range keys {
			select {
			case <-ctx.Done():
				return
			case sem <- struct{}{}:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				// Spread replicas and connections over part of the interval.
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(rand.Float64() * float64(s.cfg.RefresherInterval) / 4)):
				}
				if _, err := s.refreshShared(ctx, k, lookahead); err != nil {
					s.log.Debug("background refresh did not complete", "provider", k.Provider, "connection", k.ConnectionID, "error", err.Error())
				}
				s.wakeOutbox()
			}()
		}
	}
}
