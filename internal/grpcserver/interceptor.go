package grpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/logging"
	"github.com/sergas/core/internal/telemetry"
	"github.com/sergas/core/internal/tracing"
)

// observe wraps every RPC: it turns a panic into Internal, maps domain errors to status codes, and
// records one log line and the metrics. Request and response bodies are never logged: they may hold
// tokens and secrets.
type observe struct {
	log     *slog.Logger
	metrics *telemetry.GRPCMetrics
	// refusals samples the lines of calls refused for credentials, scope or rate: any caller can cause
	// them by the thousand, and a WARN line each would make the log the bottleneck.
	refusals *logging.Sampler
	// report receives the outcome of every application RPC (not health checks or reflection), for the
	// dependency's health.
	report func(error)
	// methods caches the metric children of each method.
	methods *methodMetrics
	// tracer makes the server span of each application RPC.
	tracer trace.Tracer
}

func newObserve(log *slog.Logger, report func(error)) observe {
	return observe{log: log, metrics: telemetry.GRPC(), refusals: logging.NewSampler(RefusalLogsPerSecond, RefusalLogBurst), report: report, methods: &methodMetrics{},
		tracer: tracing.Tracer("github.com/sergas/core/internal/grpcserver")}
}

// refusalCodes are the codes whose log lines are sampled.
var refusalCodes = map[codes.Code]bool{codes.Unauthenticated: true, codes.PermissionDenied: true, codes.ResourceExhausted: true}

func (o observe) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx, span := startSpan(o.tracer, ctx, info.FullMethod)
	// The guard runs inside this interceptor: the slot lets the log line name the client it found.
	ctx, call := auth.WithClientAddrSlot(ctx)
	func() {
		defer o.recover(info.FullMethod, &err)
		resp, err = h(ctx, req)
	}()
	err = o.finish(ctx, info.FullMethod, start, err, call.ClientAddr())
	code := status.Code(err)
	setTrailer(ctx, traceTrailer(ctx, code))
	endSpan(span, info.FullMethod, code)
	return resp, err
}

func (o observe) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	start := time.Now()
	ctx, span := startSpan(o.tracer, ss.Context(), info.FullMethod)
	ctx, call := auth.WithClientAddrSlot(ctx)
	func() {
		defer o.recover(info.FullMethod, &err)
		err = h(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}()
	err = o.finish(ctx, info.FullMethod, start, err, call.ClientAddr())
	code := status.Code(err)
	if md := traceTrailer(ctx, code); md != nil {
		ss.SetTrailer(md)
	}
	endSpan(span, info.FullMethod, code)
	return err
}

// contextStream is a server stream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

func (o observe) recover(method string, err *error) {
	if r := recover(); r != nil {
		o.log.Error("panic in RPC handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = fmt.Errorf("panic: %v", r)
	}
}

// finish logs and counts the outcome. client is the client's address as the guard found it (behind the
// gateway, its HTTP client's, while "peer" is the gateway's socket); "" when no guard ran.
func (o observe) finish(ctx context.Context, method string, start time.Time, err error, client string) error {
	elapsed := time.Since(start)
	if o.report != nil && !strings.HasPrefix(method, "/grpc.") {
		o.report(err)
	}
	serr := ToStatus(err)
	code := status.Code(serr)
	ms := o.methods.get(o.metrics, method)
	ms.handled(o.metrics, code).Inc()
	ms.duration.Observe(elapsed.Seconds())
	level := slog.LevelDebug
	var suppressed int64
	switch {
	case err == nil:
		// Successful calls log at debug: at thousands of calls a second a line each would cost more than
		// the call. The metrics count them all; LOG_LEVEL=debug shows each one.
	case code == codes.Internal || code == codes.Unknown || code == codes.DataLoss:
		// The cause (driver message, path) stays here, never in the response.
		level = slog.LevelError
	case refusalCodes[code]:
		var ok bool
		if ok, suppressed = o.refusals.Allow(time.Now()); !ok {
			return serr
		}
		level = slog.LevelWarn
	default:
		level = slog.LevelWarn
	}
	// The line's attributes are built only when it is written: a no-op call otherwise spends more on
	// them (a slice, boxed values, the peer's address as a string) than on everything else here.
	if !o.log.Enabled(ctx, level) {
		return serr
	}
	attrs := []any{"method", method, "code", code.String(), "duration_ms", float64(elapsed.Microseconds()) / 1000}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, "peer", p.Addr.String())
	}
	if client != "" {
		attrs = append(attrs, "client", client)
	}
	switch {
	case err == nil:
	case level == slog.LevelError:
		attrs = append(attrs, "error", err.Error())
	default:
		attrs = append(attrs, "error", serr.Error())
		if suppressed > 0 {
			attrs = append(attrs, "refusals_not_logged", suppressed)
		}
	}
	o.log.Log(ctx, level, "rpc", attrs...)
	return serr
}

// methodMetrics caches, per method, the metric children that WithLabelValues would otherwise find on
// every call by hashing the labels and looking them up under the vector's lock. Interceptors only see
// registered methods (gRPC answers unknown ones itself), so the cache is bounded by the services.
type methodMetrics struct{ m sync.Map } // full method -> *methodStats

type methodStats struct {
	service, method string
	duration        prometheus.Observer
	// codes holds the handled counter of each status code, filled on first use.
	codes [maxCode + 1]atomic.Pointer[prometheus.Counter]
}

// maxCode is the highest status code that gRPC defines (Unauthenticated).
const maxCode = codes.Unauthenticated

func (mm *methodMetrics) get(metrics *telemetry.GRPCMetrics, full string) *methodStats {
	if v, ok := mm.m.Load(full); ok {
		return v.(*methodStats)
	}
	svc, m := splitMethod(full)
	v, _ := mm.m.LoadOrStore(full, &methodStats{service: svc, method: m, duration: metrics.Duration.WithLabelValues(svc, m)})
	return v.(*methodStats)
}

func (ms *methodStats) handled(metrics *telemetry.GRPCMetrics, code codes.Code) prometheus.Counter {
	if code > maxCode {
		return metrics.Handled.WithLabelValues(ms.service, ms.method, code.String())
	}
	if c := ms.codes[code].Load(); c != nil {
		return *c
	}
	c := metrics.Handled.WithLabelValues(ms.service, ms.method, code.String())
	ms.codes[code].Store(&c)
	return c
}

func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
