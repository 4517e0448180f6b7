package stack_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/stack"
)

// running is a stack started for one test, with clients for every part.
type running struct {
	addrs   stack.Addrs
	key     string // an API key with every scope
	base    string
	token   tokenv1.TokenServiceClient
	audit   auditv1.AuditServiceClient
	webhook webhookv1.WebhookServiceClient
	conns   map[string]*grpc.ClientConn
}

func start(t *testing.T, env map[string]string) *running {
	t.Helper()
	return startLogging(t, env, io.Discard)
}

// startLogging starts a stack whose log goes to logs.
func startLogging(t *testing.T, env map[string]string, logs io.Writer) *running {
	t.Helper()
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	if k, ok := env["TEST_ADMIN_KEY"]; ok { // the test configured its own keys; this one has every scope
		admin.Key = k
		delete(env, "TEST_ADMIN_KEY")
	}
	signingKey := filepath.Join(t.TempDir(), "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin), "TLS_DISABLED": "true", "TOKEN_ENCRYPTION_KEYS": testKeyring,
		"AUDIT_SIGNING_KEY": signingKey,
		// Providers are never reached over the network in tests: a closed loopback port.
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": "http://127.0.0.1:1",
		"DATA_DIR":                         t.TempDir(), "GATEWAY_HTTP_ADDR": "127.0.0.1:0", "TOKEN_GRPC_ADDR": "127.0.0.1:0",
		"AUDIT_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_MAX_BODY_BYTES": "1024",
		"SHUTDOWN_TIMEOUT": "5s",
		// Production mode: the gateway presents its own key to Ingest, and sources name their scheme.
		"GATEWAY_WEBHOOK_API_KEY": admin.Key, "WEBHOOK_SOURCES": "zoho:none",
	} {
		if _, ok := env[k]; !ok {
			env[k] = v
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan stack.Addrs, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- stack.Run(ctx, config.FromMap(env), log, func(a stack.Addrs) { ready <- a }) }()
	var a stack.Addrs
	select {
	case a = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("stack did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("stack did not start in 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stack stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("stack did not stop in 20s")
		}
	})
	r := &running{addrs: a, key: admin.Key, base: "http://" + a.Gateway, conns: map[string]*grpc.ClientConn{}}
	for name, addr := range map[string]string{"token": a.Token, "audit": a.Audit, "webhook": a.Webhook} {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(admin.Key))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r.conns[name] = c
	}
	r.token = tokenv1.NewTokenServiceClient(r.conns["token"])
	r.audit = auditv1.NewAuditServiceClient(r.conns["audit"])
	r.webhook = webhookv1.NewWebhookServiceClient(r.conns["webhook"])
	return r
}

func (r *running) do(t *testing.T, method, path, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+r.key)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

func TestStack(t *testing.T) {
	backends := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string { return map[string]string{} },
		"postgres": func(t *testing.T) map[string]string {
			url := dbtest.PostgresURL(t)
			return map[string]string{
				"DATABASE_URL":            url,
				"TOKEN_DATABASE_SCHEMA":   dbtest.NewSchema(t, url),
				"AUDIT_DATABASE_SCHEMA":   dbtest.NewSchema(t, url),
				"WEBHOOK_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
				"DATABASE_POOL_SIZE":      "2",
			}
		},
	}
	for name, env := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := start(t, env(t))
			t.Run("HealthAndReflection", func(t *testing.T) { testHealth(t, r) })
			t.Run("Token", func(t *testing.T) { testToken(t, r) })
			t.Run("Audit", func(t *testing.T) { testAudit(t, r) })
			t.Run("Webhook", func(t *testing.T) { testWebhook(t, r) })
			t.Run("GatewayEndpoints", func(t *testing.T) { testGatewayEndpoints(t, r) })
		})
	}
}

func testHealth(t *testing.T, r *running) {
	ctx := t.Context()
	for name, c := range r.conns {
		resp, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s health: %v %v", name, resp, err)
		}
		stream, err := reflectpb.NewServerReflectionClient(c).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		got, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range got.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, " "), "sergas."+name+".v1") {
			t.Errorf("%s reflection lists %v", name, names)
		}
	}
}

func testToken(t *testing.T, r *running) {
	ctx := t.Context()
	_, err := r.token.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{
		Provider: "zoho", ConnectionId: "org-1", AccessToken: "secret-access", RefreshToken: "secret-refresh",
		ExpiresIn: durationpb.New(time.Hour), Scopes: []string{"ZohoCRM.modules.ALL"}, ApiDomain: "https://www.zohoapis.eu",
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.token.GetConnection(ctx, &tokenv1.GetConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
	if err != nil || !got.GetConnection().GetHasRefreshToken() || got.GetConnection().GetApiDomain() != "https://www.zohoapis.eu" {
		t.Fatalf("get: %v %v", got, err)
	}
	// The same connection over REST, and no token material in any answer.
	code, body := r.do(t, "GET", "/v1/connections/zoho/org-1", "")
	raw, _ := json.Marshal(body)
	if code != 200 || strings.Contains(string(raw), "secret-") {
		t.Fatalf("REST get: %d %s", code, raw)
	}
	code, body = r.do(t, "PUT", "/v1/connections/zoho/org-2", `{"accessToken":"a","expiresIn":"60s"}`)
	if code != 200 || body["connection"].(map[string]any)["tokenType"] != "Bearer" {
		t.Fatalf("REST put: %d %v", code, body)
	}
	list, err := r.token.ListConnections(ctx, &tokenv1.ListConnectionsRequest{Provider: "zoho", PageSize: 1})
	if err != nil || len(list.GetConnections()) != 1 || list.GetNextPageToken() == "" {
		t.Fatalf("list page 1: %v %v", list, err)
	}
	list, err = r.token.ListConnections(ctx, &tokenv1.ListConnectionsRequest{Provider: "zoho", PageSize: 1, PageToken: list.GetNextPageToken()})
	if err != nil || len(list.GetConnections()) != 1 || list.GetConnections()[0].GetConnectionId() != "org-2" || list.GetNextPageToken() != "" {
		t.Fatalf("list page 2: %v %v", list, err)
	}
	cases := []struct {
		name string
		req  *tokenv1.CreateConnectionRequest
	}{
		{"bad provider", &tokenv1.CreateConnectionRequest{Provider: "Zoho!", ConnectionId: "x", AccessToken: "a", ExpiresIn: durationpb.New(time.Minute)}},
		{"no access token", &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "x", ExpiresIn: durationpb.New(time.Minute)}},
		{"no expiry", &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "x", AccessToken: "a"}},
		{"slash in id", &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "a/b", AccessToken: "a", ExpiresIn: durationpb.New(time.Minute)}},
		{"bad api domain", &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "x", AccessToken: "a", ExpiresIn: durationpb.New(time.Minute), ApiDomain: "ftp://x"}},
	}
	for _, c := range cases {
		if _, err := r.token.CreateConnection(ctx, c.req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", c.name, err)
		}
	}
	if code, _ := r.do(t, "PUT", "/v1/connections/zoho/x", `{"accessToken":"a"}`); code != 400 {
		t.Errorf("REST invalid: %d, want 400", code)
	}
	if _, err := r.token.DeleteConnection(ctx, &tokenv1.DeleteConnectionRequest{Provider: "zoho", ConnectionId: "org-2"}); err != nil {
		t.Fatal(err)
	}
	if code, body := r.do(t, "DELETE", "/v1/connections/zoho/org-2", ""); code != 404 || body["code"] != float64(codes.NotFound) {
		t.Errorf("REST delete missing: %d %v", code, body)
	}
}

func testAudit(t *testing.T, r *running) {
	ctx := t.Context()
	meta, _ := structpb.NewStruct(map[string]any{"deal": "42", "amount": 1200.5})
	first, err := r.audit.RecordEvent(ctx, &auditv1.RecordEventRequest{
		Actor: "agent-7", Action: "crm.deal.update", Resource: "Deals/42", Outcome: auditv1.Outcome_OUTCOME_SUCCESS,
		Metadata: meta, IdempotencyKey: "call-1",
	})
	if err != nil || first.GetEvent().GetSequence() != 1 {
		t.Fatalf("record: %v %v", first, err)
	}
	again, err := r.audit.RecordEvent(ctx, &auditv1.RecordEventRequest{
		Actor: "agent-7", Action: "crm.deal.update", Resource: "Deals/42", Outcome: auditv1.Outcome_OUTCOME_SUCCESS,
		Metadata: meta, IdempotencyKey: "call-1",
	})
	if err != nil || !again.GetDuplicate() || again.GetEvent().GetId() != first.GetEvent().GetId() {
		t.Fatalf("retry: %v %v", again, err)
	}
	code, body := r.do(t, "POST", "/v1/audit/events", `{"actor":"ops@example.com","action":"token.revoke","outcome":"OUTCOME_DENIED"}`)
	if code != 200 || body["event"].(map[string]any)["sequence"] != "2" {
		t.Fatalf("REST record: %d %v", code, body)
	}
	code, body = r.do(t, "GET", "/v1/audit/events?actor=agent-7", "")
	if code != 200 || len(body["events"].([]any)) != 1 {
		t.Fatalf("REST list: %d %v", code, body)
	}
	got, err := r.audit.GetEvent(ctx, &auditv1.GetEventRequest{Id: first.GetEvent().GetId()})
	if err != nil || got.GetEvent().GetMetadata().GetFields()["amount"].GetNumberValue() != 1200.5 {
		t.Fatalf("get: %v %v", got, err)
	}
	if _, err := r.audit.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "a", Action: "b"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("missing outcome: %v", err)
	}
	if _, err := r.audit.GetEvent(ctx, &auditv1.GetEventRequest{Id: "not-a-uuid"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad id: %v", err)
	}
	if _, err := r.audit.ListEvents(ctx, &auditv1.ListEventsRequest{PageToken: "garbage"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad page token: %v", err)
	}
}

func testWebhook(t *testing.T, r *running) {
	ctx := t.Context()
	payload := `{"module":"Deals","ids":["4150868000001"],"operation":"update","server_time":1700000000000}`
	code, body := r.do(t, "POST", "/webhooks/zoho", payload, "Content-Type", "application/json", "Authorization", "Bearer must-not-be-stored")
	if code != 202 || body["duplicate"] != false {
		t.Fatalf("ingest: %d %v", code, body)
	}
	id := body["eventId"].(string)
	code, body = r.do(t, "POST", "/webhooks/zoho", payload, "Content-Type", "application/json")
	if code != 200 || body["duplicate"] != true || body["eventId"] != id {
		t.Fatalf("repeat delivery: %d %v", code, body)
	}
	got, err := r.webhook.GetEvent(ctx, &webhookv1.GetEventRequest{Id: id})
	// No subscription wants it, so it is stored delivered (a subscription's events wait as pending).
	if err != nil || string(got.GetEvent().GetPayload()) != payload || got.GetEvent().GetStatus() != webhookv1.EventStatus_EVENT_STATUS_DELIVERED {
		t.Fatalf("stored event: %v %v", got, err)
	}
	for _, h := range got.GetEvent().GetHeaders() {
		if h.GetName() == "Authorization" {
			t.Fatal("Authorization header was stored")
		}
	}
	list, err := r.webhook.ListEvents(ctx, &webhookv1.ListEventsRequest{Source: "zoho"})
	if err != nil || len(list.GetEvents()) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if code, _ := r.do(t, "POST", "/webhooks/unknown", "x"); code != 404 {
		t.Errorf("unknown source: %d", code)
	}
	if code, _ := r.do(t, "POST", "/webhooks/zoho", strings.Repeat("x", 2048)); code != 413 {
		t.Errorf("oversized body: %d", code)
	}
	if code, _ := r.do(t, "GET", "/webhooks/zoho", ""); code != 405 {
		t.Errorf("GET on ingress: %d", code)
	}
	code, body = r.do(t, "GET", "/v1/webhook/events/"+id, "")
	if code != 200 || body["event"].(map[string]any)["source"] != "zoho" {
		t.Errorf("REST get: %d %v", code, body)
	}
}

func testGatewayEndpoints(t *testing.T, r *running) {
	if code, body := r.do(t, "GET", "/readyz", ""); code != 200 || body["ready"] != true {
		t.Errorf("readyz: %d %v", code, body)
	}
	if code, _ := r.do(t, "GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	code, doc := r.do(t, "GET", "/openapi.json", "")
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range []string{"/v1/connections/{provider}/{connectionId}", "/v1/audit/events", "/v1/webhook/events", "/webhooks/{source}"} {
		if _, ok := paths[p]; code != 200 || !ok {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateConnection"`, "grpc_server_handling_seconds_bucket", `http_requests_total{code="202"`} {
		if !strings.Contains(string(raw), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	if code, _ := r.do(t, "GET", "/v1/nothing-here", ""); code != 404 {
		t.Errorf("unknown route: %d", code)
	}
}

// testKeyring seals tokens in tests (a fixed test-only key).
const testKeyring = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// plainConn dials addr without credentials.
func plainConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func metadataOutgoing(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}
