// Package auditclient is the services' connection to the audit service, and the denial log that sends
// refused calls there as "auth.denied" events.
//
// Sending denials is asynchronous and bounded, so that a caller hammering a service can neither slow it
// down nor flood the audit log. The two kinds of refusal have separate budgets: every refusal of a
// genuine credential (a key trying a scope it lacks, an expired or revoked key) is recorded as an event
// of its own, so that anonymous noise can never push it out; anonymous refusals and rate-limit refusals
// are summed up, one event per actor, address and reason per interval, with a count. What cannot be
// kept (a full queue, too many distinct addresses in one interval) is counted in
// audit_denials_dropped_total.
package auditclient

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/lazyconn"
	"github.com/sergas/core/internal/tracing"
)

var (
	sent    = promauto.NewCounter(prometheus.CounterOpts{Name: "audit_denials_sent_total", Help: "auth.denied events delivered to the audit service."})
	dropped = promauto.NewCounterVec(prometheus.CounterOpts{Name: "audit_denials_dropped_total", Help: "auth.denied events not delivered, by cause."}, []string{"cause"})
)

// Client is a connection to the audit service that authenticates with an API key (which needs
// audit:write; empty when the client certificate is mapped to that scope instead). It can be created
// before the audit service's address is known and connected later.
type Client struct{ *lazyconn.Conn }

// NewClient returns an unconnected client.
func NewClient(apiKey string) *Client { return &Client{lazyconn.New("audit", apiKey)} }

// Record appends one event. An event without a request_id or an idempotency key takes the trace id of
// ctx as its request_id (the audit service would take the same from the call's traceparent); one with an
// idempotency key keeps what it has, so that every retry of it is the same event.
func (c *Client) Record(ctx context.Context, req *auditv1.RecordEventRequest) error {
	if req.GetRequestId() == "" && req.GetIdempotencyKey() == "" {
		req.RequestId = tracing.TraceID(ctx)
	}
	conn, ctx, err := c.Get(ctx)
	if err != nil {
		return err
	}
	_, err = auditv1.NewAuditServiceClient(conn).RecordEvent(ctx, req)
	return err
}

// DefaultInterval is how often summed-up refusals are sent.
const DefaultInterval = 10 * time.Second

// DenialConfig sizes the denial log.
type DenialConfig struct {
	// Interval between sends of summed-up refusals (DefaultInterval when zero).
	Interval time.Duration
	// QueueSize bounds the refusals of genuine credentials waiting to be sent (4096 when zero).
	QueueSize int
	// MaxGroups bounds the distinct actor/address/reason groups summed up in one interval (1000 when
	// zero), and so the events each interval sends.
	MaxGroups int
}

// Denials queues refusals and delivers them through a Client.
type Denials struct {
	log    *slog.Logger
	client *Client
	cfg    DenialConfig
	known  chan auth.Denial

	mu     sync.Mutex
	groups map[groupKey]*group
}

type groupKey struct {
	actor, peer string
	reason      auth.Reason
}

type group struct {
	method      string
	count       int64
	first, last time.Time
}

var _ auth.DenialSink = (*Denials)(nil)

// NewDenials returns a sink that sends through client.
func NewDenials(log *slog.Logger, client *Client, cfg DenialConfig) *Denials {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxGroups <= 0 {
		cfg.MaxGroups = 1000
	}
	return &Denials{log: log, client: client, cfg: cfg, known: make(chan auth.Denial, cfg.QueueSize), groups: map[groupKey]*group{}}
}

// Denied implements auth.DenialSink; it never blocks.
func (d *Denials) Denied(x auth.Denial) {
	if x.Known && x.Reason != auth.ReasonRateLimited {
		select {
		case d.known <- x:
		default:
			dropped.WithLabelValues("queue_full").Inc()
		}
		return
	}
	d.add(groupKey{actor: x.Actor, peer: clientaddr.Bucket(x.Peer), reason: x.Reason}, x.Method, 1, x.Time, x.Time)
}

// add sums count refusals into the group k; a group that does not fit is counted as dropped.
func (d *Denials) add(k groupKey, method string, count int64, first, last time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.groups[k]
	if !ok {
		if len(d.groups) >= d.cfg.MaxGroups {
			dropped.WithLabelValues("too_many_groups").Add(float64(count))
			return
		}
		g = &group{method: method, first: first}
		d.groups[k] = g
	}
	g.count += count
	if last.After(g.last) {
		g.last = last
	}
	if first.Before(g.first) {
		g.first = first
	}
}

// Retries of a genuine refusal that the audit service could not take (Unavailable, ResourceExhausted):
// jittered exponential backoff from retryBase to retryCap, at most retryAttempts tries in all. While one
// refusal waits, the ones behind it wait in the bounded queue.
const (
	retryBase     = 100 * time.Millisecond
	retryCap      = 5 * time.Second
	retryAttempts = 10
	// shutdownBudget is how long Run keeps delivering after ctx is done.
	shutdownBudget = 2 * time.Second
)

// pending is a genuine refusal waiting to be retried.
type pending struct {
	x        auth.Denial
	attempts int
}

// Run delivers refusals until ctx is done, then, for at most shutdownBudget, what is still queued and
// summed up; what that leaves is counted as dropped (cause "shutdown").
func (d *Denials) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		// Never connected: nothing can be delivered.
		d.dropQueued()
		d.mu.Lock()
		for _, g := range d.groups {
			dropped.WithLabelValues("shutdown").Add(float64(g.count))
		}
		d.groups = map[groupKey]*group{}
		d.mu.Unlock()
		return
	case <-d.client.Ready():
	}
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	var retry *pending
	var retryAt <-chan time.Time
	for {
		if ctx.Err() != nil {
			d.shutdown(ctx, retry)
			return
		}
		queue := d.known
		if retry != nil {
			queue = nil // one refusal waits at a time; the rest keep their order in the queue
		}
		select {
		case <-ctx.Done():
			d.shutdown(ctx, retry)
			return
		case x := <-queue:
			retry = &pending{x: x}
		case <-retryAt:
		case <-tick.C:
			d.flush(ctx, false)
			continue
		}
		var ok bool
		if retry, ok = d.attempt(ctx, retry); !ok {
			d.shutdown(ctx, retry)
			return
		}
		retryAt = nil
		if retry != nil {
			retryAt = time.After(backoff(retry.attempts))
		}
	}
}

// attempt sends p once. It returns p again when it should be retried later, and ok false when ctx ended
// while pausing after a refusal of our own credential.
func (d *Denials) attempt(ctx context.Context, p *pending) (again *pending, ok bool) {
	p.attempts++
	err := d.send(ctx, p.x, 0)
	switch {
	case err == nil:
		sent.Inc()
		return nil, true
	case ctx.Err() != nil:
		return p, true // stopping: the shutdown tries it once more
	case transient(err) && p.attempts < retryAttempts:
		return p, true
	}
	dropped.WithLabelValues("send_failed").Inc()
	return nil, d.pauseIfRefused(ctx, err)
}

// transient reports an error after which the same event may be accepted later: the audit service is
// down, overloaded or shedding load.
func transient(err error) bool {
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.ResourceExhausted || c == codes.DeadlineExceeded
}

// backoff is the wait before try attempts+1: exponential with full jitter in its upper half, so that
// the replicas of a service do not retry in step.
func backoff(attempts int) time.Duration {
	d := min(retryBase<<min(attempts-1, 16), retryCap)
	return d/2 + rand.N(d/2+1)
}

// pauseIfRefused waits a minute when the audit service refused our own credential, instead of feeding a
// denial loop. It returns false when ctx ended during the pause.
func (d *Denials) pauseIfRefused(ctx context.Context, err error) bool {
	c := status.Code(err)
	if c != codes.Unauthenticated && c != codes.PermissionDenied {
		return true
	}
	d.log.Error("audit service refused the denial log's credential; pausing a minute", "code", c.String())
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Minute):
		return true
	}
}

// shutdown delivers, within shutdownBudget, the refusal waiting for a retry, the queued genuine
// refusals and the summed-up ones, and counts what it could not deliver.
func (d *Denials) shutdown(ctx context.Context, retry *pending) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBudget)
	defer cancel()
	if retry != nil {
		d.deliverOnce(sctx, retry.x)
	}
drain:
	for sctx.Err() == nil {
		select {
		case x := <-d.known:
			d.deliverOnce(sctx, x)
		default:
			break drain
		}
	}
	d.flush(sctx, true)
	d.dropQueued()
}

// deliverOnce sends x without retrying (shutdown has no time to wait), counting a failure.
func (d *Denials) deliverOnce(ctx context.Context, x auth.Denial) {
	err := ctx.Err()
	if err == nil {
		err = d.send(ctx, x, 0)
	}
	switch {
	case err == nil:
		sent.Inc()
	case ctx.Err() != nil:
		dropped.WithLabelValues("shutdown").Inc()
	default:
		dropped.WithLabelValues("send_failed").Inc()
	}
}

// dropQueued counts the genuine refusals still queued when delivery stops.
func (d *Denials) dropQueued() {
	for {
		select {
		case <-d.known:
			dropped.WithLabelValues("shutdown").Inc()
		default:
			return
		}
	}
}

// flush sends one event per group summed up since the last flush. A group the audit service could not
// take for the moment is summed in again for the next flush, unless this is the last one.
func (d *Denials) flush(ctx context.Context, last bool) {
	d.mu.Lock()
	groups := d.groups
	d.groups = make(map[groupKey]*group, len(groups))
	d.mu.Unlock()
	for k, g := range groups {
		x := auth.Denial{Actor: k.actor, Peer: k.peer, Reason: k.reason, Method: g.method, Time: g.first}
		var err error
		if err = ctx.Err(); err == nil {
			err = d.send(ctx, x, g.count, g.last)
		}
		switch {
		case err == nil:
			sent.Inc()
		case !last && (transient(err) || ctx.Err() != nil):
			// Summed in again: the next flush, or the one at shutdown, sends it.
			d.add(k, g.method, g.count, g.first, g.last)
		case last && ctx.Err() != nil:
			dropped.WithLabelValues("shutdown").Add(float64(g.count))
		default:
			dropped.WithLabelValues("send_failed").Add(float64(g.count))
			if !last {
				d.pauseIfRefused(ctx, err)
			}
		}
	}
}

// maxResource bounds the method name recorded: an unknown method's name is the caller's choice.
const maxResource = 200

func (d *Denials) send(ctx context.Context, x auth.Denial, count int64, last ...time.Time) error {
	fields := map[string]any{"reason": string(x.Reason), "peer": x.Peer}
	if count > 0 {
		fields["count"] = float64(count)
		fields["first_time"] = x.Time.UTC().Format(time.RFC3339Nano)
		if len(last) > 0 {
			fields["last_time"] = last[0].UTC().Format(time.RFC3339Nano)
		}
	}
	meta, _ := structpb.NewStruct(fields)
	resource := x.Method
	if x.Reason == auth.ReasonUnknownRPC || len(resource) > maxResource || !utf8.ValidString(resource) {
		resource = "(unknown method)"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return d.client.Record(ctx, &auditv1.RecordEventRequest{
		Actor: Actor(x.Actor), Action: "auth.denied", Resource: resource, Outcome: auditv1.Outcome_OUTCOME_DENIED,
		OccurTime: timestamppb.New(x.Time), Metadata: meta,
	})
}
