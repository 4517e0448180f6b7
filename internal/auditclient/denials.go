// Package auditclient is the services' connection to the audit service, and the denial log that sends
// refused calls there as "auth.denied" events. Sending denials is
// asynchronous, bounded and rate-limited, so that a caller hammering a service with bad credentials can
// neither slow the service down nor flood the audit log; what is dropped is counted.
package auditclient

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"
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

// Denials queues denials and delivers them through a Client.
type Denials struct {
	log    *slog.Logger
	client *Client
	queue  chan auth.Denial
	limit  *rate.Limiter
}

var _ auth.DenialSink = (*Denials)(nil)

// NewDenials returns a sink that authenticates to the audit service with apiKey (which needs
// audit:write; empty when the client certificate is mapped to that scope instead). At most perSecond
// events are kept per second, with bursts of burst.
func NewDenials(log *slog.Logger, client *Client, perSecond float64, burst int) *Denials {
	return &Denials{log: log, client: client, queue: make(chan auth.Denial, 1024), limit: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

// Denied implements auth.DenialSink; it never blocks.
func (d *Denials) Denied(x auth.Denial) {
	if !d.limit.Allow() {
		dropped.WithLabelValues("rate_limited").Inc()
		return
	}
	select {
	case d.queue <- x:
	default:
		dropped.WithLabelValues("queue_full").Inc()
	}
}

// Run delivers queued events until ctx is done, then closes the connection.
func (d *Denials) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-d.client.Ready():
	}
	for {
		select {
		case <-ctx.Done():
			return
		case x := <-d.queue:
			if err := d.send(ctx, x); err != nil {
				dropped.WithLabelValues("send_failed").Inc()
				if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
					// Our own credential is refused: pause instead of feeding a denial loop.
					d.log.Error("audit service refused the denial log's credential; pausing a minute", "code", c.String())
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Minute):
					}
				}
			} else {
				sent.Inc()
			}
		}
	}
}

func (d *Denials) send(ctx context.Context, x auth.Denial) error {
	meta, _ := structpb.NewStruct(map[string]any{"reason": string(x.Reason), "peer": x.Peer})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return d.client.Record(ctx, &auditv1.RecordEventRequest{
		Actor: x.Actor, Action: "auth.denied", Resource: x.Method, Outcome: auditv1.Outcome_OUTCOME_DENIED,
		OccurTime: timestamppb.New(x.Time), Metadata: meta,
	})
}
