package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/logging"
)

// Every RPC the gateway makes passes through here: it carries the HTTP client's address, and a transport
// failure (the service down or unreachable) reaches the caller as a plain 503, never as the dialer's
// message, which names internal addresses.

type clientAddrKey struct{}

// withClientAddr records the HTTP client's address (behind trusted proxies) for the RPCs r causes.
func (g *Gateway) withClientAddr(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := clientaddr.FromHTTP(r, g.cfg.TrustedProxies, g.cfg.ClientIPHeader)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientAddrKey{}, addr)))
	})
}

// outgoing sets x-sergas-client-ip to the address withClientAddr found, with its proof under
// CLIENT_ADDR_SECRET, replacing whatever else put either there: grpc-gateway forwards only permanent HTTP
// headers by default, but the services believe these keys from the gateway, so no client-sent value may
// ever reach them under them.
func (g *Gateway) outgoing(ctx context.Context) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(clientaddr.MetadataKey))+len(md.Get(clientaddr.ProofKey)) > 0 {
		md = md.Copy()
		md.Delete(clientaddr.MetadataKey)
		md.Delete(clientaddr.ProofKey)
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	addr, _ := ctx.Value(clientAddrKey{}).(string)
	if addr == "" || addr == clientaddr.Unknown { // as clientaddr.Outgoing: nothing to vouch for
		return ctx
	}
	// clientaddr.Outgoing, with the proof from the cache (the same proof, computed once a second).
	return metadata.AppendToOutgoingContext(ctx, clientaddr.MetadataKey, addr,
		clientaddr.ProofKey, g.proofs.proof(g.cfg.ClientAddrSecret, addr, time.Now()))
}

// answeredKey holds a flag that answerTracker sets when the service itself ended the RPC with a status.
type answeredKey struct{}

// answerTracker is a client stats handler telling a status the service sent (it arrives as trailers) from
// one the client connection made up (no connection, connection lost).
type answerTracker struct{}

func (answerTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (answerTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (answerTracker) HandleConn(context.Context, stats.ConnStats) {}
func (answerTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.InTrailer); ok {
		if f, ok := ctx.Value(answeredKey{}).(*atomic.Bool); ok {
			f.Store(true)
		}
	}
}

// errServiceUnavailable is what a caller sees of a transport failure.
var errServiceUnavailable = func() error {
	st, _ := status.New(codes.Unavailable, "service unavailable").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	return st.Err()
}()

func (g *Gateway) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	answered := new(atomic.Bool)
	ctx = context.WithValue(g.outgoing(ctx), answeredKey{}, answered)
	err := invoker(ctx, method, req, reply, cc, opts...)
	return g.transportError(ctx, method, err, answered)
}

func (g *Gateway) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	answered := new(atomic.Bool)
	ctx = context.WithValue(g.outgoing(ctx), answeredKey{}, answered)
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, g.transportError(ctx, method, err, answered)
	}
	return &answeredStream{ClientStream: s, g: g, method: method, answered: answered, ctx: ctx}, nil
}

// answeredStream applies transportError to a stream's later messages too: a connection lost mid-stream
// (the service stopped during an export) must not show its dialer's message in the last line.
type answeredStream struct {
	grpc.ClientStream
	g        *Gateway
	method   string
	answered *atomic.Bool
	ctx      context.Context // the request's, for the log line's trace
}

func (s *answeredStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return s.g.transportError(s.ctx, s.method, err, s.answered)
}

// transportError replaces an UNAVAILABLE the service did not send with errServiceUnavailable, logging the
// real cause (sampled: a flood of requests to a service that is down must not flood the log).
func (g *Gateway) transportError(ctx context.Context, method string, err error, answered *atomic.Bool) error {
	if err == nil || answered.Load() || status.Code(err) != codes.Unavailable {
		return err
	}
	svc := g.serviceOf(method)
	transportErrors.WithLabelValues(svc).Inc()
	if !strings.HasPrefix(method, "/grpc.health.v1.Health/") { // /readyz reports those itself
		g.transportLog.Warn(ctx, "service unreachable", "service", svc, "method", method, "error", status.Convert(err).Message())
	}
	return errServiceUnavailable
}

// serviceOf names the service of a full method name, from the fixed set the gateway dials.
func (g *Gateway) serviceOf(method string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if _, ok := g.conns[name]; ok {
		return name
	}
	return "other"
}

// sampledLog writes at most a few lines a second and says how many it left out.
type sampledLog struct {
	log *slog.Logger
	s   *logging.Sampler
}

func newSampledLog(log *slog.Logger, perSecond float64, burst int) *sampledLog {
	return &sampledLog{log: log, s: logging.NewSampler(perSecond, burst)}
}

// Warn writes msg at warning level unless sampled out.
func (s *sampledLog) Warn(ctx context.Context, msg string, args ...any) {
	s.write(ctx, slog.LevelWarn, msg, args)
}

// Error writes msg at error level unless sampled out.
func (s *sampledLog) Error(ctx context.Context, msg string, args ...any) {
	s.write(ctx, slog.LevelError, msg, args)
}

func (s *sampledLog) write(ctx context.Context, level slog.Level, msg string, args []any) {
	ok, n := s.s.Allow(time.Now())
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	s.log.Log(ctx, level, msg, args...) // ctx names the request's trace
}
