package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
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
	"github.com/sergas/core/internal/ratelimit"
)

// Gateway routes HTTP requests to the three services over gRPC.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	mux     *runtime.ServeMux
	conns   map[string]*grpc.ClientConn // by service name
	webhook webhookv1.WebhookServiceClient
	handler http.Handler
	tls     *tls.Config
}

// New dials every service (lazily: a service that is down only fails its own routes and /readyz) and
// builds the HTTP handler.
// creds secure the connections to the services (TLS or mTLS, or plaintext); tlsCfg, when not nil, serves
// HTTPS.
func New(ctx context.Context, cfg Config, log *slog.Logger, creds credentials.TransportCredentials, tlsCfg *tls.Config) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: log, conns: map[string]*grpc.ClientConn{}, tls: tlsCfg}
	g.mux = runtime.NewServeMux(
		runtime.WithErrorHandler(errorHandler),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
			// Unknown fields are an error, so that a misspelt field is reported instead of ignored.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
	)
	endpoints := []struct {
		name     string
		addr     string
		register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
	}{
		{tokenv1.TokenService_ServiceDesc.ServiceName, cfg.TokenEndpoint, tokenv1.RegisterTokenServiceHandler},
		{auditv1.AuditService_ServiceDesc.ServiceName, cfg.AuditEndpoint, auditv1.RegisterAuditServiceHandler},
		{webhookv1.WebhookService_ServiceDesc.ServiceName, cfg.WebhookEndpoint, webhookv1.RegisterWebhookServiceHandler},
	}
	for _, e := range endpoints {
		conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("dial %s at %s: %w", e.name, e.addr, err)
		}
		g.conns[e.name] = conn
		if err := e.register(ctx, g.mux, conn); err != nil {
			g.Close()
			return nil, err
		}
	}
	g.webhook = webhookv1.NewWebhookServiceClient(g.conns[webhookv1.WebhookService_ServiceDesc.ServiceName])

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", g.healthz)
	root.HandleFunc("GET /readyz", g.readyz)
	root.Handle("GET /metrics", promhttp.Handler())
	root.HandleFunc("GET /openapi.json", serveOpenAPI)
	root.HandleFunc("/webhooks/{source}", g.ingest)
	root.Handle("/", http.MaxBytesHandler(g.mux, cfg.MaxBodyBytes))
	g.handler = instrument(root)
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

// Serve listens on cfg.Addr and serves until ctx is done, then lets in-flight requests finish.
// ready, when not nil, receives the bound address.
func (g *Gateway) Serve(ctx context.Context, ready func(addr string)) error {
	lis, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           http.TimeoutHandler(g.handler, g.cfg.RequestTimeout, `{"code":4,"message":"request timed out"}`),
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
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	g.log.Info("stopped", "service", "gateway")
	return err
}

// errorHandler writes errors as grpc-gateway does, adding Retry-After when the service said when to retry.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if wait, ok := ratelimit.RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapi.JSON)
}
