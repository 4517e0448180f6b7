package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/gateway"
	"github.com/sergas/core/services/webhook"
)

const e2eSecret = "gateway-e2e-shared-secret-0123"

// e2e is the webhook service behind the real gateway: its guard, its database (SQLite file or a
// PostgreSQL schema), and the gateway's HTTP handler on loopback.
type e2e struct {
	base        string
	webhookAddr string // the service's gRPC address
	gatewayKey  string // a key with webhook:ingest
}

func startE2E(t *testing.T, d db.Dialect, extra map[string]string) *e2e {
	t.Helper()
	dir := t.TempDir()
	sources := filepath.Join(dir, "sources.json")
	if err := os.WriteFile(sources, []byte(`{"sources": [{"name": "github", "scheme": "hmac", "secrets": ["env:GH_SECRET"],
		"hmac": {"header": "X-Hub-Signature-256", "prefix": "sha256=", "event_id_header": "X-GitHub-Delivery"}, "body_limit": 64}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := authtest.NewKey(t, "gateway", auth.ScopeWebhookIngest)
	vars := map[string]string{
		"AUTH_API_KEYS": authtest.JSON(gw), "TLS_DISABLED": "true", "DATA_DIR": dir, "WEBHOOK_GRPC_ADDR": "127.0.0.1:0",
		"WEBHOOK_SOURCES_FILE": sources, "GH_SECRET": e2eSecret, "SHUTDOWN_TIMEOUT": "5s",
		"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0", "GATEWAY_HTTP_ADDR": "127.0.0.1:0",
		"GATEWAY_WEBHOOK_API_KEY": gw.Key,
	}
	if d == db.Postgres {
		url := dbtest.PostgresURL(t)
		vars["DATABASE_URL"], vars["WEBHOOK_DATABASE_SCHEMA"] = url, dbtest.NewSchema(t, url)
	}
	for k, v := range extra {
		vars[k] = v
	}
	env := config.FromMap(vars)
	cfg, platform, gwCfg := webhook.LoadConfig(env), app.LoadPlatform(env), gateway.LoadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := platform.Start(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := webhook.Open(ctx, cfg, log, webhook.Denials(rt))
	if err != nil {
		t.Fatal(err)
	}
	if rt.Audit != nil {
		if err := rt.Audit.Connect(platform.AuditEndpoint, insecure.NewCredentials()); err != nil {
			t.Fatal(err)
		}
	}
	bound := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg.ServiceConfig, rt, log, svc, func(a string) { bound <- a }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("webhook service did not stop")
		}
	})
	select {
	case gwCfg.WebhookEndpoint = <-bound:
	case err := <-done:
		t.Fatalf("webhook service: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("webhook service did not start")
	}
	g, err := gateway.New(ctx, gwCfg, log, insecure.NewCredentials(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &e2e{base: srv.URL, webhookAddr: gwCfg.WebhookEndpoint, gatewayKey: gw.Key}
}

func (e *e2e) post(t *testing.T, body string, headers ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", e.base+"/webhooks/github", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func ghSig(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// A signed delivery through the real gateway, which presents its own key to the service's guard: stored
// (202), repeated (200, duplicate), forged (401), unsigned (401), too large for its source (413).
func TestSignedDeliveryThroughTheGateway(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			e := startE2E(t, d, nil)
			body := `{"action":"opened"}`
			code, _, out := e.post(t, body, "X-Hub-Signature-256", ghSig(e2eSecret, body), "X-GitHub-Delivery", "d-1")
			if code != 202 || out["duplicate"] != false {
				t.Fatalf("signed delivery: %d %v", code, out)
			}
			id := out["eventId"]
			code, _, out = e.post(t, body, "X-Hub-Signature-256", ghSig(e2eSecret, body), "X-GitHub-Delivery", "d-1")
			if code != 200 || out["duplicate"] != true || out["eventId"] != id {
				t.Fatalf("repeat: %d %v", code, out)
			}
			code, h, out := e.post(t, body, "X-Hub-Signature-256", ghSig("forged-secret-0123456789", body), "X-GitHub-Delivery", "d-2")
			if code != 401 || h.Get("WWW-Authenticate") != "" {
				t.Fatalf("forged: %d %v %v", code, h, out)
			}
			if code, _, out := e.post(t, body); code != 401 {
				t.Fatalf("unsigned: %d %v", code, out)
			}
			big := strings.Repeat("x", 65)
			if code, _, out := e.post(t, big, "X-Hub-Signature-256", ghSig(e2eSecret, big)); code != 413 {
				t.Fatalf("over the source's body limit: %d %v", code, out)
			}
			// The forged d-2 was never marked seen: its genuine delivery is stored.
			code, _, out = e.post(t, body+" ", "X-Hub-Signature-256", ghSig(e2eSecret, body+" "), "X-GitHub-Delivery", "d-2")
			if code != 202 || out["duplicate"] != false {
				t.Fatalf("genuine delivery after a forged one with its id: %d %v", code, out)
			}
		})
	}
}

// auditRecorder is an audit service stand-in that keeps the events it is sent.
type auditRecorder struct {
	auditv1.UnimplementedAuditServiceServer
	mu     sync.Mutex
	events []*auditv1.RecordEventRequest
}

func (a *auditRecorder) RecordEvent(_ context.Context, req *auditv1.RecordEventRequest) (*auditv1.RecordEventResponse, error) {
	a.mu.Lock()
	a.events = append(a.events, req)
	a.mu.Unlock()
	return &auditv1.RecordEventResponse{}, nil
}

// find returns the events recorded for reason and the sum of their counts (refusals that fall into
// two intervals are sent as two events).
func (a *auditRecorder) find(reason string) (events []*auditv1.RecordEventRequest, count float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events {
		if e.GetMetadata().GetFields()["reason"].GetStringValue() == reason {
			events = append(events, e)
			count += e.GetMetadata().GetFields()["count"].GetNumberValue()
		}
	}
	return events, count
}

// Forged deliveries through the gateway reach the audit log through the denial log, summed up (one
// auth.denied event per source, address and reason per interval, with a count: the counts add up to the
// refusals), and nothing of the delivery's content.
func TestForgedDeliveriesReachTheAuditLog(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &auditRecorder{}
	srv := grpc.NewServer()
	auditv1.RegisterAuditServiceServer(srv, rec)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	e := startE2E(t, db.SQLite, map[string]string{"AUDIT_CLIENT_API_KEY": authtest.NewKey(t, "denials", auth.ScopeAuditWrite).Key,
		"AUDIT_GRPC_ENDPOINT": lis.Addr().String(), "AUDIT_DENIAL_INTERVAL": "50ms"})
	body := `{"secret-marker":"x"}`
	for range 3 {
		if code, _, out := e.post(t, body, "X-Hub-Signature-256", ghSig("forged-secret-0123456789", body)); code != 401 {
			t.Fatalf("forged: %d %v", code, out)
		}
	}
	var events []*auditv1.RecordEventRequest
	testutil.Eventually(t, 10*time.Second, "the three forged deliveries in the audit log", func() bool {
		var n float64
		events, n = rec.find("webhook_bad_signature")
		return n == 3
	})
	for _, got := range events {
		f := got.GetMetadata().GetFields()
		if got.GetAction() != "auth.denied" || got.GetActor() != "webhook-source:github" || got.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED ||
			f["peer"].GetStringValue() != "127.0.0.1" || got.GetResource() != webhookv1.WebhookService_Ingest_FullMethodName {
			t.Fatalf("audit event %v", got)
		}
		if strings.Contains(got.String(), "secret-marker") || strings.Contains(got.String(), "forged-secret") {
			t.Fatalf("audit event holds the delivery: %v", got)
		}
	}
}

// Without a credential the service takes, the gateway answers 503 with Retry-After (the sender keeps the
// delivery and retries), never 401: the sender did nothing wrong.
func TestGatewayWithoutItsCredential(t *testing.T) {
	reader := authtest.NewKey(t, "reader", auth.ScopeWebhookRead)
	for name, extra := range map[string]map[string]string{
		"no key":      {"GATEWAY_WEBHOOK_API_KEY": ""},
		"wrong scope": {"GATEWAY_WEBHOOK_API_KEY": reader.Key, "AUTH_API_KEYS": authtest.JSON(reader)},
	} {
		t.Run(name, func(t *testing.T) {
			e := startE2E(t, db.SQLite, extra)
			body := `{"action":"opened"}`
			code, h, out := e.post(t, body, "X-Hub-Signature-256", ghSig(e2eSecret, body))
			if code != 503 || h.Get("Retry-After") == "" {
				t.Fatalf("%d Retry-After=%q %v", code, h.Get("Retry-After"), out)
			}
		})
	}
}

// Ingest over gRPC needs webhook:ingest: without a credential it is refused (UNAUTHENTICATED), with a
// key lacking the scope too (PERMISSION_DENIED), and nothing is stored; with the scope it is served.
func TestIngestNeedsTheIngestScope(t *testing.T) {
	reader := authtest.NewKey(t, "reader", auth.ScopeWebhookRead)
	ingester := authtest.NewKey(t, "gateway", auth.ScopeWebhookIngest)
	e := startE2E(t, db.SQLite, map[string]string{"AUTH_API_KEYS": authtest.JSON(reader, ingester), "WEBHOOK_SOURCES_FILE": "",
		"WEBHOOK_SOURCES": "raw:none", "GATEWAY_WEBHOOK_API_KEY": ingester.Key})
	req := &webhookv1.IngestRequest{Source: "raw", Body: []byte("{}")}
	for _, c := range []struct {
		name string
		opts []grpc.DialOption
		want codes.Code
	}{
		{"no credential", nil, codes.Unauthenticated},
		{"webhook:read only", []grpc.DialOption{authtest.Bearer(reader.Key)}, codes.PermissionDenied},
		{"webhook:ingest", []grpc.DialOption{authtest.Bearer(ingester.Key)}, codes.OK},
	} {
		conn, err := grpc.NewClient(e.webhookAddr, append(c.opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = webhookv1.NewWebhookServiceClient(conn).Ingest(t.Context(), req)
		if status.Code(err) != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	conn, err := grpc.NewClient(e.webhookAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(reader.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	list, err := webhookv1.NewWebhookServiceClient(conn).ListEvents(t.Context(), &webhookv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != 1 {
		t.Fatalf("stored %v %v, want only the authorised delivery", list, err)
	}
}
