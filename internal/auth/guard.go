package auth

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/ratelimit"
)

// Denial describes one refused call, for the audit log.
type Denial struct {
	Actor  string // principal id, or "anonymous"
	Method string
	Reason Reason
	Peer   string // the caller's IP address
	Time   time.Time
}

// DenialSink receives refused calls. Implementations must not block.
type DenialSink interface{ Denied(Denial) }

var (
	deniedOnce sync.Once
	denied     *prometheus.CounterVec
)

func deniedCounter() *prometheus.CounterVec {
	deniedOnce.Do(func() {
		denied = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_denied_total",
			Help: "Calls refused before reaching a handler, by gRPC service and reason.",
		}, []string{"grpc_service", "reason"})
		prometheus.MustRegister(denied)
	})
	return denied
}

// Guard enforces authentication, the per-RPC scope and the per-credential rate limit, in that order,
// before any handler runs.
type Guard struct {
	authn   *Authenticator
	policy  Policy
	limit   *ratelimit.Keyed
	sink    DenialSink
	metrics *prometheus.CounterVec
}

// NewGuard returns a guard; sink may be nil.
func NewGuard(authn *Authenticator, policy Policy, limit *ratelimit.Keyed, sink DenialSink) *Guard {
	return &Guard{authn: authn, policy: policy, limit: limit, sink: sink, metrics: deniedCounter()}
}

// Unary is the unary server interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := g.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// Stream is the stream server interceptor.
func (g *Guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := g.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &principalStream{ServerStream: ss, ctx: ctx})
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

func (g *Guard) check(ctx context.Context, method string) (context.Context, error) {
	scope, public, known := g.policy.Requirement(method)
	if public {
		return ctx, nil
	}
	now := time.Now()
	if !known {
		return ctx, g.deny(ctx, method, "anonymous", ReasonUnknownRPC, status.Error(codes.PermissionDenied, "method has no access policy"))
	}
	p, reason := g.authn.Authenticate(ctx)
	if p == nil {
		return ctx, g.deny(ctx, method, "anonymous", reason, status.Error(codes.Unauthenticated, unauthenticatedMessage(reason)))
	}
	if !p.Has(scope) {
		return ctx, g.deny(ctx, method, p.ID, ReasonScope, status.Errorf(codes.PermissionDenied, "method requires scope %s", scope))
	}
	key := p.ID
	if g.authn.Disabled {
		key = peerIP(ctx) // without credentials, limit per client address
	}
	if ok, wait := g.limit.Allow(key, now); !ok {
		return ctx, g.deny(ctx, method, p.ID, ReasonRateLimited, ratelimit.Exceeded("credential", wait))
	}
	return WithPrincipal(ctx, p), nil
}

func unauthenticatedMessage(r Reason) string {
	switch r {
	case ReasonMissing:
		return "missing credentials: send the header authorization: Bearer <API key or JWT>"
	case ReasonExpired:
		return "credentials expired"
	case ReasonRevoked:
		return "credentials revoked"
	case ReasonMalformed:
		return "malformed credentials"
	}
	return "invalid credentials"
}

func (g *Guard) deny(ctx context.Context, method, actor string, r Reason, err error) error {
	svc := method
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		svc = strings.TrimPrefix(method[:i], "/")
	}
	g.metrics.WithLabelValues(svc, string(r)).Inc()
	if g.sink != nil {
		g.sink.Denied(Denial{Actor: actor, Method: method, Reason: r, Peer: peerIP(ctx), Time: time.Now()})
	}
	return err
}

func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}
