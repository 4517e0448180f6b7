package tracing_test

import (
	"context"
	"github.com/sergas/core/internal/testutil"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/tracing"
)

// A failed export is logged without the endpoint's user information or query, which may hold a
// collector's credentials (https://TOKEN@collector/..., ?api_key=...): net/http's errors quote the URL
// with only the password masked.
func TestExportErrorsDoNotQuoteEndpointSecrets(t *testing.T) {
	// A collector that refuses every export with a status, and a port nothing listens on.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	t.Cleanup(refusing.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	for name, host := range map[string]string{"refusing": strings.TrimPrefix(refusing.URL, "http://"), "closed": closed} {
		t.Run(name, func(t *testing.T) {
			var logs testutil.LogBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			e := config.FromMap(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://usertok3n:passw0rd@" + host + "/v1/traces?api_key=qu3ry",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
			cfg := tracing.LoadConfig(e, "svc")
			if err := e.Err(); err != nil {
				t.Fatal(err)
			}
			shutdown, err := tracing.Setup(t.Context(), cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = tracing.Setup(context.Background(), tracing.Config{}, discard()) })
			_, span := tracing.Tracer("test").Start(context.Background(), "root")
			span.End()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			serr := shutdown(ctx)
			all := logs.String()
			if serr != nil {
				all += serr.Error()
			}
			if !strings.Contains(all, "exporting spans failed") && serr == nil {
				t.Fatalf("the failed export was not reported: %q", all)
			}
			for _, secret := range []string{"usertok3n", "passw0rd", "qu3ry"} {
				if strings.Contains(all, secret) {
					t.Fatalf("%s quoted: %s", secret, all)
				}
			}
		})
	}
}

// A header OTEL_EXPORTER_OTLP_HEADERS decodes to a value no transport can send (a line break, a NUL) or
// a name that is not a token is refused at start-up by name, without quoting it, instead of failing
// every export later.
func TestUnsendableHeadersRefusedAtStart(t *testing.T) {
	for _, v := range []string{"api-key=se%0D%0Acret", "api-key=se%00cret", "bad%20name=secret", "b@d=secret", "x=secret%0A"} {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
			e := config.FromMap(map[string]string{name: v, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
			tracing.LoadConfig(e, "svc")
			err := e.Err()
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s=%q: error %v, want one naming the variable", name, v, err)
				continue
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "cret") {
				t.Errorf("%s=%q: error quotes the value: %v", name, v, err)
			}
		}
	}
}

// A collector that accepts connections and never answers neither blocks the code that ends spans (the
// batcher's queue is bounded and drops) nor holds shutdown beyond its deadline.
func TestHangingCollector(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(protocol, func(t *testing.T) {
			addr, release := hangingCollector(t)
			e := config.FromMap(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
			cfg := tracing.LoadConfig(e, "svc")
			shutdown, err := tracing.Setup(t.Context(), cfg, discard())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = tracing.Setup(context.Background(), tracing.Config{}, discard()) })
			start := time.Now()
			tr := tracing.Tracer("test")
			for i := 0; i < 20000; i++ { // ten times the batcher's queue
				_, span := tr.Start(context.Background(), "s")
				span.End()
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("ending 20000 spans took %v against a hanging collector", d)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start = time.Now()
			_ = shutdown(ctx)
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("shutdown took %v with a 1s deadline", d)
			}
			// The batcher goes on draining its queue after shutdown's deadline (harmless: the process
			// exits); once the collector is gone each export fails at once. Other tests count the
			// exporter's goroutines.
			release()
			if _, ok := testutil.Wait(15*time.Second, func() bool { return otelGoroutines(t) == "" }); !ok {
				t.Fatalf("exporter goroutines left:\n%s", otelGoroutines(t))
			}
		})
	}
}

// hangingCollector listens on loopback and holds every connection open without reading or answering;
// release closes the listener and the connections.
func hangingCollector(t *testing.T) (addr string, release func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	release = func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		conns = nil
		mu.Unlock()
	}
	t.Cleanup(release)
	return l.Addr().String(), release
}

// Resource attributes are not headers: a UTF-8 value is kept.
func TestResourceAttributesAreNotCheckedAsHeaders(t *testing.T) {
	e := config.FromMap(map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "team=caf%C3%A9,k8s.pod/name=x"})
	cfg := tracing.LoadConfig(e, "svc")
	if err := e.Err(); err != nil || cfg.Attributes["team"] != "café" {
		t.Fatalf("%+v, %v", cfg.Attributes, err)
	}
}

// A collector's redirect is not followed: the headers (its API key) would go wherever it points.
func TestExportDoesNotFollowRedirects(t *testing.T) {
	var mu sync.Mutex
	var leaked string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = r.Header.Get("X-Api-Key")
		mu.Unlock()
	}))
	t.Cleanup(elsewhere.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/v1/traces", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirecting.Close)
	e := config.FromMap(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": redirecting.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k3y"})
	shutdown, err := tracing.Setup(t.Context(), tracing.LoadConfig(e, "svc"), discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = tracing.Setup(context.Background(), tracing.Config{}, discard()) })
	_, span := tracing.Tracer("test").Start(context.Background(), "root")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_ = shutdown(ctx)
	mu.Lock()
	defer mu.Unlock()
	if leaked != "" {
		t.Fatalf("the API key followed the redirect: %q", leaked)
	}
}
