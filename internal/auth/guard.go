package auth

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/ratelimit"
)

// Denial describes one refused call, for the audit log.
type Denial struct {
	Actor  string // principal id, or "anonymous"
	Method string
	Reason Reason
	Peer   string // the client's IP address (behind the gateway: its HTTP client's)
	Time   time.Time
	// Known is set when a genuine credential was identified (a key lacking the scope, an expired or
	// revoked key): such a refusal is recorded one by one and never dropped for anonymous noise.
	// Anonymous refusals, and refusals for exceeding a rate limit, may be aggregated.
	Known bool
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

// Guard enforces, before any handler runs and in this order: the per-address budget of failed calls
// (which, once spent, leaves only cheaply verified credentials through), authentication, the per-RPC
// scope and the per-credential budget of the RPC's class.
type Guard struct {
	authn   *Authenticator
	policy  Policy
	limits  *Limiters
	trusted clientaddr.Trusted
	sink    DenialSink
	metrics *prometheus.CounterVec
}

// NewGuard returns a guard; trusted are the proxies (the gateway) whose report of the client's address
// is believed; sink may be nil.
func NewGuard(authn *Authenticator, policy Policy, limits *Limiters, trusted clientaddr.Trusted, sink DenialSink) *Guard {
	return &Guard{authn: authn, policy: policy, limits: limits, trusted: trusted, sink: sink, metrics: deniedCounter()}
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
	addr := clientaddr.FromGRPC(ctx, g.trusted)
	ctx, call := withClientAddr(ctx, addr)
	scope, public, known := g.policy.Requirement(method)
	if public {
		return ctx, nil
	}
	now := time.Now()
	// An address that has spent its failures is not refused outright: it may be shared by an attacker and
	// by honest clients (the gateway's HTTP clients, the services' own audit writer on 127.0.0.1). Its
	// calls are still authenticated where that is cheap (an API key: one SHA-256; a TLS identity: a map
	// lookup after a handshake already paid for), so a valid credential goes on; calls without
	// credentials, with a JWT (a signature check an attacker could make us repeat) or with a credential
	// that fails are refused without spending anything more.
	blocked, wait := g.limits.blocked(addr, now)
	if !known {
		if blocked {
			return ctx, g.deny(method, Denial{Actor: "anonymous", Reason: ReasonAddressLimited, Peer: addr, Time: now},
				ratelimit.Exceeded("failed-call", wait))
		}
		g.limits.failed(addr, now)
		return ctx, g.deny(method, Denial{Actor: "anonymous", Reason: ReasonUnknownRPC, Peer: addr, Time: now},
			status.Error(codes.PermissionDenied, "method has no access policy"))
	}
	p, reason, claimed := g.authn.identify(ctx, blocked)
	if p == nil {
		d := Denial{Actor: "anonymous", Reason: reason, Peer: addr, Time: now}
		if claimed != "" {
			d.Actor, d.Known = claimed, true
		}
		if blocked {
			d.Reason, d.Known = ReasonAddressLimited, false
			return ctx, g.deny(method, d, ratelimit.Exceeded("failed-call", wait))
		}
		g.limits.failed(addr, now)
		return ctx, g.deny(method, d, status.Error(codes.Unauthenticated, unauthenticatedMessage(reason)))
	}
	if !p.Has(scope) {
		g.limits.failed(addr, now)
		return ctx, g.deny(method, Denial{Actor: p.ID, Reason: ReasonScope, Peer: addr, Time: now, Known: true},
			status.Errorf(codes.PermissionDenied, "method requires scope %s", scope))
	}
	key := p.ID
	if g.authn.Disabled {
		key = addr // without credentials, limit per client address
	}
	if ok, wait := g.limits.allow(g.limits.Internal(p.ID), ClassOf(scope), key, now); !ok {
		return ctx, g.deny(method, Denial{Actor: p.ID, Reason: ReasonRateLimited, Peer: addr, Time: now},
			ratelimit.Exceeded("credential", wait))
	}
	// The Call is this RPC's own (withClientAddr): completed in place, without another context value.
	call.principal = p
	return ctx, nil
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

func (g *Guard) deny(method string, d Denial, err error) error {
	svc := method
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		svc = strings.TrimPrefix(method[:i], "/")
	}
	g.metrics.WithLabelValues(svc, string(d.Reason)).Inc()
	if g.sink != nil {
		d.Method = method
		g.sink.Denied(d)
	}
	return err
}
