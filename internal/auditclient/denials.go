// Package auditclient sends refused calls to the audit service as "auth.denied" events. Sending is
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

// Denials queues denials and delivers them to the audit service once Connect has been called.
type Denials struct {
	log    *slog.Logger
	apiKey string
	queue  chan auth.Denial
	limit  *rate.Limiter

	mu     sync.Mutex
	client auditv1.AuditServiceClient
	conn   *grpc.ClientConn
	ready  chan struct{}
}

var _ auth.DenialSink = (*Denials)(nil)

// NewDenials returns a sink that authenticates to the audit service with apiKey (which needs
// audit:write; empty when the client certificate is mapped to that scope instead). At most perSecond
// events are kept per second, with bursts of burst.
func NewDenials(log *slog.Logger, apiKey string, perSecond float64, burst int) *Denials {
	return &Denials{log: log, apiKey: apiKey, queue: make(chan auth.Denial, 1024),
		limit: rate.NewLimiter(rate.Limit(perSecond), burst), ready: make(chan struct{})}
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

// Connect dials the audit service; queued events start flowing.
func (d *Denials) Connect(endpoint string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.conn, d.client = conn, auditv1.NewAuditServiceClient(conn)
	d.mu.Unlock()
	close(d.ready)
	return nil
}

// Run delivers queued events until ctx is done, then closes the connection.
func (d *Denials) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-d.ready:
	}
	defer d.conn.Close()
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
	if d.apiKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+d.apiKey)
	}
	_, err := d.client.RecordEvent(ctx, &auditv1.RecordEventRequest{
		Actor: x.Actor, Action: "auth.denied", Resource: x.Method, Outcome: auditv1.Outcome_OUTCOME_DENIED,
		OccurTime: timestamppb.New(x.Time), Metadata: meta,
	})
	return err
}
