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
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
)

var (
	sent    = promauto.NewCounter(prometheus.CounterOpts{Name: "audit_denials_sent_total", Help: "auth.denied events delivered to the audit service."})
	dropped = promauto.NewCounterVec(prometheus.CounterOpts{Name: "audit_denials_dropped_total", Help: "auth.denied events not delivered, by cause."}, []string{"cause"})
)

// Client is a connection to the audit service that authenticates with an API key (which needs
// audit:write; empty when the client certificate is mapped to that scope instead). It can be created
// before the audit service's address is known and connected later.
type Client struct {
	apiKey string
	mu     sync.Mutex
	client auditv1.AuditServiceClient
	conn   *grpc.ClientConn
	ready  chan struct{}
}

// NewClient returns an unconnected client.
func NewClient(apiKey string) *Client { return &Client{apiKey: apiKey, ready: make(chan struct{})} }

// Connect dials the audit service; calls made before it wait or fail as Unavailable.
func (c *Client) Connect(endpoint string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.conn, c.client = conn, auditv1.NewAuditServiceClient(conn)
	c.mu.Unlock()
	close(c.ready)
	return nil
}

// Ready is closed once Connect has been called.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Record appends one event.
func (c *Client) Record(ctx context.Context, req *auditv1.RecordEventRequest) error {
	c.mu.Lock()
	client := c.client
	c.mu.Unlock()
	if client == nil {
		return status.Error(codes.Unavailable, "audit service not connected yet")
	}
	if c.apiKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.apiKey)
	}
	_, err := client.RecordEvent(ctx, req)
	return err
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
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
	k := groupKey{actor: x.Actor, peer: x.Peer, reason: x.Reason}
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.groups[k]
	if !ok {
		if len(d.groups) >= d.cfg.MaxGroups {
			dropped.WithLabelValues("too_many_groups").Inc()
			return
		}
		g = &group{method: x.Method, first: x.Time}
		d.groups[k] = g
	}
	g.count++
	g.last = x.Time
}

// Run delivers refusals until ctx is done, then sends what is summed up so far (for at most 2 s).
func (d *Denials) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-d.client.Ready():
	}
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			d.flush(fctx)
			cancel()
			return
		case x := <-d.known:
			if !d.deliver(ctx, x, 0) {
				return
			}
		case <-tick.C:
			d.flush(ctx)
		}
	}
}

// flush sends one event per group summed up since the last flush.
func (d *Denials) flush(ctx context.Context) {
	d.mu.Lock()
	groups := d.groups
	d.groups = make(map[groupKey]*group, len(groups))
	d.mu.Unlock()
	for k, g := range groups {
		x := auth.Denial{Actor: k.actor, Peer: k.peer, Reason: k.reason, Method: g.method, Time: g.first}
		if ctx.Err() != nil || !d.deliver(ctx, x, g.count, g.last) {
			dropped.WithLabelValues("send_failed").Add(float64(g.count))
		}
	}
}

// deliver sends one event (count > 0: a sum of count refusals from x.Time to last[0]). It returns false
// when ctx ended while waiting out a refusal of our own credential.
func (d *Denials) deliver(ctx context.Context, x auth.Denial, count int64, last ...time.Time) bool {
	err := d.send(ctx, x, count, last...)
	if err == nil {
		sent.Inc()
		return true
	}
	dropped.WithLabelValues("send_failed").Inc()
	if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
		// Our own credential is refused: pause instead of feeding a denial loop.
		d.log.Error("audit service refused the denial log's credential; pausing a minute", "code", c.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Minute):
		}
	}
	return true
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
		Actor: x.Actor, Action: "auth.denied", Resource: resource, Outcome: auditv1.Outcome_OUTCOME_DENIED,
		OccurTime: timestamppb.New(x.Time), Metadata: meta,
	})
}
