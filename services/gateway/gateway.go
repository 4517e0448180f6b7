package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/gen/openapi"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/lazyconn"
	"github.com/sergas/core/internal/tracing"
)

// Gateway routes HTTP requests to the three services over gRPC.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	mux     *runtime.ServeMux
	probe   *runtime.ServeMux // the same routes, only to list a path's methods (see allowed)
	routes  *routeTable
	conns   map[string]*grpc.ClientConn // by service name
	webhook webhookv1.WebhookServiceClient
	handler http.Handler
	tls     *tls.Config
	// transportLog samples the causes of transport failures, which a caller can trigger at will.
	transportLog *sampledLog
	proofs       *proofCache // client-address proofs of the current second
	bearer       bearer      // the Authorization value of WebhookCredential's key
	ingests      *ingestBatcher
}

// New dials every service (lazily: a service that is down only fails its own routes and /readyz) and
// builds the HTTP handler.
// creds secure the connections to the services (TLS or mTLS, or plaintext); tlsCfg, when not nil, serves
// HTTPS.
func New(ctx context.Context, cfg Config, log *slog.Logger, creds credentials.TransportCredentials, tlsCfg *tls.Config) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: log, conns: map[string]*grpc.ClientConn{}, tls: tlsCfg, transportLog: newSampledLog(log, 1, 5), proofs: newProofCache()}
	g.ingests = &ingestBatcher{g: g}
	if cfg.ClientAddrSecret == nil { // a Config not made by LoadConfig (tests)
		g.cfg.ClientAddrSecret, _ = clientaddr.LoadSecret(config.FromMap(nil))
	}
	if !cfg.ClientAddrSecretSet && !cfg.Development {
		log.Warn(clientaddr.GatewayWarning, "service", "gateway")
	}
	if cfg.WebhookCredential == nil && !cfg.Development {
		// Ingest needs webhook:ingest: without a key only a client certificate mapped to that scope gets
		// deliveries through, and otherwise every one answers 503 (the sender retries, nothing is lost).
		log.Warn("GATEWAY_WEBHOOK_API_KEY is not set: webhook deliveries are stored only if this gateway's client certificate is mapped to webhook:ingest in AUTH_TLS_IDENTITIES; otherwise each answers 503",
			"service", "gateway")
	}
	endpoints := []struct {
		name     string
		addr     string
		register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
	}{
		{tokenv1.TokenService_ServiceDesc.ServiceName, cfg.TokenEndpoint, tokenv1.RegisterTokenServiceHandler},
		{auditv1.AuditService_ServiceDesc.ServiceName, cfg.AuditEndpoint, auditv1.RegisterAuditServiceHandler},
		{webhookv1.WebhookService_ServiceDesc.ServiceName, cfg.WebhookEndpoint, webhookv1.RegisterWebhookServiceHandler},
	}
	var names []string
	for _, e := range endpoints {
		names = append(names, e.name)
	}
	routes, err := buildRoutes(names)
	if err != nil {
		return nil, err
	}
	g.routes = routes
	common := []runtime.ServeMuxOption{
		// Unknown fields are an error, so that a misspelt field is reported instead of ignored.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, strictJSON{&runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}}),
	}
	if !cfg.MethodOverride {
		// grpc-gateway serves a form POST as GET, or as the method in X-HTTP-Method-Override: a request any
		// web page can make a browser send would reach PUT and DELETE routes.
		common = append(common, runtime.WithDisablePathLengthFallback(), runtime.WithDisableHTTPMethodOverride())
	}
	g.mux = runtime.NewServeMux(slices.Concat(common, []runtime.ServeMuxOption{runtime.WithErrorHandler(errorHandler), runtime.WithStreamErrorHandler(streamError),
		runtime.WithRoutingErrorHandler(g.routingError), runtime.WithMiddlewares(g.queryGuard)})...)
	g.probe = runtime.NewServeMux(slices.Concat(common, []runtime.ServeMuxOption{runtime.WithErrorHandler(probeError),
		runtime.WithRoutingErrorHandler(probeRoutingError), runtime.WithMiddlewares(probeMatch)})...)
	for _, e := range endpoints {
		conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(creds), grpc.WithStatsHandler(answerTracker{}), tracing.DialOption(), lazyconn.RoundRobin,
			grpc.WithUnaryInterceptor(g.unaryInterceptor), grpc.WithStreamInterceptor(g.streamInterceptor))
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("dial %s at %s: %w", e.name, e.addr, err)
		}
		g.conns[e.name] = conn
		for _, mux := range []*runtime.ServeMux{g.mux, g.probe} {
			if err := e.register(ctx, mux, conn); err != nil {
				g.Close()
				return nil, err
			}
		}
	}
	g.webhook = webhookv1.NewWebhookServiceClient(g.conns[webhookv1.WebhookService_ServiceDesc.ServiceName])

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", g.healthz)
	root.HandleFunc("GET /readyz", g.readyz)
	root.Handle("GET /metrics", promhttp.Handler())
	root.HandleFunc("GET /openapi.json", serveOpenAPI)
	root.HandleFunc("/webhooks/{source}", g.ingest)
	root.Handle("/", g.restInput(g.mux))
	g.handler = traced(root, g.routes.isStream, instrument(root, g.routes.isStream, validPath(g.withClientAddr(root))))
	return g, nil
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Close closes the connections to the services.
func (g *Gateway) Close() error {
	var err error
	for _, c := range g.conns {
		err = errors.Join(err, c.Close())
	}
	return err
}

// Serve listens on cfg.Addr and serves until ctx is done, then lets in-flight requests finish for
// cfg.ShutdownTimeout. Requests still running then are cut and counted in the log: a stop is not a
// failure, so Serve returns nil, as the gRPC services do when they cut their stragglers.
// ready, when not nil, receives the bound address.
func (g *Gateway) Serve(ctx context.Context, ready func(addr string)) error {
	lis, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.cfg.Addr, err)
	}
	var inFlight atomic.Int64
	timed := http.TimeoutHandler(g.handler, g.cfg.RequestTimeout, `{"code":4,"message":"request timed out"}`)
	stopping := make(chan struct{})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			if g.routes.isStream(r) {
				g.serveStream(w, r, stopping)
				return
			}
			if isIngestPath(r.URL.Path) {
				g.serveBounded(w, r)
				return
			}
			timed.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
		ReadTimeout:       g.cfg.RequestTimeout,
		WriteTimeout:      g.cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       g.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	if g.tls != nil {
		lis = tls.NewListener(lis, g.tls)
	}
	g.log.Info("serving HTTP", "service", "gateway", "addr", lis.Addr().String(), "tls", g.tls != nil)
	if ready != nil {
		ready(lis.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	close(stopping) // streams end now; the other requests finish within SHUTDOWN_TIMEOUT
	err = srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		g.log.Warn("cut requests still in flight after SHUTDOWN_TIMEOUT", "service", "gateway",
			"requests", inFlight.Load(), "timeout", g.cfg.ShutdownTimeout.String())
		_ = srv.Close() // closes their connections, which cancels their contexts and so their RPCs
		err = nil
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	g.log.Info("stopped", "service", "gateway")
	return err
}

// serveBounded serves a webhook delivery under a context deadline of GATEWAY_REQUEST_TIMEOUT instead of
// http.TimeoutHandler, whose goroutine, buffered copy of the answer and extra context per request were
// about a tenth of the gateway's CPU per delivery. The bound is the same: the server's ReadTimeout cuts a
// body that arrives too slowly (ingest answers 408), the deadline cuts the call to the webhook service
// (ingest answers 503, as TimeoutHandler did), and WriteTimeout bounds the answer. Every step of ingest
// blocks only on one of those three, so it cannot outlive them as an arbitrary handler could.
func (g *Gateway) serveBounded(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RequestTimeout)
	defer cancel()
	g.handler.ServeHTTP(w, r.WithContext(ctx))
}

// isIngestPath reports whether path is one the root mux routes to ingest ("/webhooks/{source}": one
// non-empty segment). A path it does not recognise (an escaped slash, say) still reaches ingest through
// http.TimeoutHandler, bounded as before.
func isIngestPath(path string) bool {
	source, ok := strings.CutPrefix(path, "/webhooks/")
	return ok && source != "" && !strings.Contains(source, "/")
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapi.JSON)
}
