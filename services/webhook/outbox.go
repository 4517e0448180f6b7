package webhook

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auditoutbox"
	"github.com/sergas/core/services/webhook/store"
)

// outboxWorker is the audit outbox sender's name in logs, metrics and the worker list.
const outboxWorker = "webhook.audit_outbox"

// outboxState is the audit outbox sender's part of the server. Dead letters, redrives, replays and
// purges queue their audit events in the transaction that makes them (store.AuditRecord); the sender
// delivers them to the audit service from every replica (each claims its own batch).
type outboxState struct {
	// audit is where the events go; nil without an audit credential, when they wait in the table.
	audit auditoutbox.Recorder
	// wake starts a round at once (wakeOutbox); rounds counts finished rounds (tests wait on it).
	wake   chan struct{}
	rounds atomic.Uint64
	// idle and maxBackoff pace the rounds (zero: auditoutbox's defaults); tests shorten them.
	idle, maxBackoff time.Duration
}

// WithAudit sends the audit events the service queues to rec (the audit service's client).
func WithAudit(rec auditoutbox.Recorder) Option {
	return func(s *Server) { s.outbox.use(rec) }
}

// Audit is the option that sends the queued audit events to rt's audit client, when it has one.
func Audit(rt *app.Runtime) Option {
	return func(s *Server) {
		if rt != nil && rt.Audit != nil {
			s.outbox.use(rt.Audit)
		}
	}
}

// use makes rec the sender's recorder. It runs as an option, before the server serves, so that
// wakeOutbox (called from RPCs) reads a channel that no longer changes.
func (o *outboxState) use(rec auditoutbox.Recorder) {
	o.audit, o.wake = rec, make(chan struct{}, 1)
}

// outboxWorkers is the audit outbox sender, on every replica, when the server has an audit client and
// its store keeps an outbox. Without a client the events stay queued until a replica with one runs.
func (s *Server) outboxWorkers() []app.Worker {
	st, ok := s.deliveries.(store.OutboxStore)
	if s.outbox.audit == nil || !ok {
		return nil
	}
	sender := &auditoutbox.Sender{Store: st, Audit: s.outbox.audit, Service: "webhook", Log: s.log,
		// A name per sender, so that a claim names the sender that holds it even with several servers
		// in one process (tests).
		Owner: "sergas-webhook/" + store.Replica() + "/" + uuid.NewString()[:8],
		Now:   func() time.Time { return s.now() }, Wake: s.outbox.wake, Rounds: &s.outbox.rounds,
		Idle: s.outbox.idle, MaxBackoff: s.outbox.maxBackoff}
	return []app.Worker{{Name: outboxWorker, Run: func(ctx context.Context) error { sender.Run(ctx); return nil }}}
}

// wakeOutbox starts a sender round now: call it after a commit that queued audit events, so that they
// reach the audit log without waiting for the next round.
func (s *Server) wakeOutbox() {
	select {
	case s.outbox.wake <- struct{}{}:
	default: // a round is already due, or no sender runs (a nil channel)
	}
}
