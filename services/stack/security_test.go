package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/gen/openapi"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/stack"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
)

var services = []struct {
	name   string
	desc   *grpc.ServiceDesc
	policy auth.Policy
	other  string // a scope that grants nothing on this service
}{
	{"token", &tokenv1.TokenService_ServiceDesc, token.Policy, auth.ScopeAuditRead},
	{"audit", &auditv1.AuditService_ServiceDesc, audit.Policy, auth.ScopeWebhookRead},
	{"webhook", &webhookv1.WebhookService_ServiceDesc, webhook.Policy, auth.ScopeTokenRead},
}

// Every RPC a service offers has a declared scope or is declared public; the guard denies anything else.
func TestEveryRPCHasAPolicy(t *testing.T) {
	for _, s := range services {
		var methods []string
		for _, m := range s.desc.Methods {
			methods = append(methods, m.MethodName)
		}
		for _, m := range s.desc.Streams {
			methods = append(methods, m.StreamName)
		}
		for _, m := range methods {
			full := "/" + s.desc.ServiceName + "/" + m
			scope, public, known := s.policy.Requirement(full)
			if !known || (!public && !auth.KnownScope(scope)) {
				t.Errorf("%s has no declared scope", full)
			}
		}
		for full := range s.policy.Scopes {
			if !strings.HasPrefix(full, "/"+s.desc.ServiceName+"/") {
				t.Errorf("%s policy names %s, which is not its method", s.name, full)
			}
		}
	}
}

// credentials of every kind the matrix tries.
type creds struct {
	admin, expired, revoked authtest.Key
	byScope                 map[string]authtest.Key
}

func newCreds(t *testing.T) (creds, string) {
	c := creds{
		admin:   authtest.NewKey(t, "admin", auth.AllScopes...),
		expired: authtest.NewKey(t, "expired", auth.AllScopes...).Expired(),
		revoked: authtest.NewKey(t, "revoked", auth.AllScopes...).Revoked(),
		byScope: map[string]authtest.Key{},
	}
	all := []authtest.Key{c.admin, c.expired, c.revoked}
	for i, s := range auth.AllScopes {
		k := authtest.NewKey(t, fmt.Sprintf("only-%d", i), s)
		c.byScope[s] = k
		all = append(all, k)
	}
	return c, authtest.JSON(all...)
}

const (
	wantOK = iota
	wantUnauthenticated
	wantDenied
)

type attempt struct {
	name   string
	header string // the authorization header, "" for none
	want   int
}

func (c creds) attempts(scope, other string) []attempt {
	if scope == "" { // public method: every caller gets through the guard
		return []attempt{{"none", "", wantOK}, {"malformed", "Bearer nonsense", wantOK}, {"valid", "Bearer " + c.admin.Key, wantOK}}
	}
	return []attempt{
		{"no credential", "", wantUnauthenticated},
		{"malformed", "Bearer nonsense", wantUnauthenticated},
		{"wrong scheme", "Basic " + c.admin.Key, wantUnauthenticated},
		{"expired", "Bearer " + c.expired.Key, wantUnauthenticated},
		{"revoked", "Bearer " + c.revoked.Key, wantUnauthenticated},
		{"wrong scope", "Bearer " + c.byScope[other].Key, wantDenied},
		{"exact scope", "Bearer " + c.byScope[scope].Key, wantOK},
		{"valid", "Bearer " + c.admin.Key, wantOK},
	}
}

func TestAccessMatrix(t *testing.T) {
	c, keys := newCreds(t)
	// The matrix fails on purpose hundreds of times from one address: lift the per-address budget of
	// failed calls (tested on its own in platform_flood_test.go), and sum up anonymous refusals often.
	r := start(t, map[string]string{"AUTH_API_KEYS": keys, "AUDIT_CLIENT_API_KEY": c.admin.Key, "TEST_ADMIN_KEY": c.admin.Key,
		"RATE_LIMIT_FAILED_PER_SECOND": "0", "AUDIT_DENIAL_INTERVAL": "100ms"})
	addr := map[string]string{"token": r.addrs.Token, "audit": r.addrs.Audit, "webhook": r.addrs.Webhook}

	t.Run("gRPC", func(t *testing.T) {
		for _, s := range services {
			conn, err := grpc.NewClient(addr[s.name], grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sd, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(s.desc.ServiceName))
			if err != nil {
				t.Fatal(err)
			}
			methods := sd.(protoreflect.ServiceDescriptor).Methods()
			for i := range methods.Len() {
				m := methods.Get(i)
				full := "/" + s.desc.ServiceName + "/" + string(m.Name())
				scope, _, _ := s.policy.Requirement(full)
				for _, a := range c.attempts(scope, s.other) {
					ctx := t.Context()
					if a.header != "" {
						ctx = metadataCtx(ctx, a.header)
					}
					err := invoke(ctx, conn, full, m)
					checkCode(t, full+" "+a.name, status.Code(err), a.want)
				}
			}
		}
	})

	t.Run("REST", func(t *testing.T) {
		var doc struct {
			Paths map[string]map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
			t.Fatal(err)
		}
		param := regexp.MustCompile(`\{[^}]+\}`)
		for path, ops := range doc.Paths {
			url := param.ReplaceAllStringFunc(path, func(p string) string {
				if p == "{id}" && strings.HasPrefix(path, "/v1/audit/checkpoints/") {
					return "1" // checkpoints are numbered; a UUID would be refused (400) before the guard
				}
				if p == "{id}" {
					return uuid.NewString()
				}
				if p == "{source}" {
					return "zoho"
				}
				return "x"
			})
			for method := range ops {
				scope := restScope(method, path)
				for _, a := range c.attempts(scope, otherScope(scope)) {
					req, _ := http.NewRequest(strings.ToUpper(method), r.base+url, strings.NewReader("{}"))
					if a.header != "" {
						req.Header.Set("Authorization", a.header)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					got := codes.OK
					switch resp.StatusCode {
					case 401:
						got = codes.Unauthenticated
					case 403:
						got = codes.PermissionDenied
					}
					checkCode(t, fmt.Sprintf("%s %s %s (HTTP %d)", method, path, a.name, resp.StatusCode), got, a.want)
				}
			}
		}
	})

	t.Run("DenialsReachTheAuditLog", func(t *testing.T) {
		var reasons map[string]bool
		testutil.Eventually(t, 10*time.Second, "every kind of denial in the audit log", func() bool {
			list, err := r.audit.ListEvents(t.Context(), &auditv1.ListEventsRequest{Action: "auth.denied", PageSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			reasons = map[string]bool{}
			for _, e := range list.GetEvents() {
				reasons[e.GetMetadata().GetFields()["reason"].GetStringValue()] = true
				if e.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED || !strings.HasPrefix(e.GetResource(), "/sergas.") {
					t.Fatalf("denial event %v", e)
				}
			}
			return reasons["missing_credentials"] && reasons["expired_credentials"] && reasons["revoked_credentials"] && reasons["insufficient_scope"]
		})
	})
}

// restScope is the scope of a REST route: the scope of the RPC it maps to.
func restScope(method, path string) string {
	write := method != "get"
	switch {
	case strings.HasPrefix(path, "/webhooks/"):
		return ""
	case strings.HasPrefix(path, "/v1/connections") && write:
		return auth.ScopeTokenAdmin
	case strings.HasPrefix(path, "/v1/connections"):
		return auth.ScopeTokenRead
	case path == "/v1/audit/signing-key":
		return "" // a public key, served to anyone
	case path == "/v1/audit/chain:verify":
		return auth.ScopeAuditRead // a read, though sent with POST
	case path == "/v1/audit/checkpoints" && write:
		return auth.ScopeAuditAdmin
	case strings.HasPrefix(path, "/v1/audit/") && write:
		return auth.ScopeAuditWrite
	case strings.HasPrefix(path, "/v1/audit/"):
		return auth.ScopeAuditRead
	case strings.HasPrefix(path, "/v1/webhook/channels") && write:
		return auth.ScopeWebhookAdmin // enabling, renewing, disabling act at Zoho
	case strings.HasSuffix(path, ":receive") || strings.HasSuffix(path, ":poll") || strings.HasSuffix(path, ":ack") ||
		strings.HasSuffix(path, ":nack") || strings.HasSuffix(path, ":extendLease"):
		return auth.ScopeWebhookConsume
	case strings.HasPrefix(path, "/v1/webhook/") && write:
		return auth.ScopeWebhookAdmin // subscriptions, redrive
	}
	return auth.ScopeWebhookRead
}

func otherScope(scope string) string {
	if strings.HasPrefix(scope, "token") {
		return auth.ScopeAuditRead
	}
	return auth.ScopeTokenRead
}

func checkCode(t *testing.T, what string, got codes.Code, want int) {
	t.Helper()
	switch want {
	case wantUnauthenticated:
		if got != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", what, got)
		}
	case wantDenied:
		if got != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", what, got)
		}
	default:
		if got == codes.Unauthenticated || got == codes.PermissionDenied {
			t.Errorf("%s: %v, want to pass the guard", what, got)
		}
	}
}

func metadataCtx(ctx context.Context, header string) context.Context {
	return metadataOutgoing(ctx, "authorization", header)
}

// invoke calls any method with an empty request of its type.
func invoke(ctx context.Context, conn *grpc.ClientConn, full string, m protoreflect.MethodDescriptor) error {
	in, out := dynamicpb.NewMessage(m.Input()), dynamicpb.NewMessage(m.Output())
	if !m.IsStreamingClient() && !m.IsStreamingServer() {
		return conn.Invoke(ctx, full, in, out)
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: m.IsStreamingServer(), ClientStreams: m.IsStreamingClient()}, full)
	if err != nil {
		return err
	}
	if err := s.SendMsg(in); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	err = s.RecvMsg(out)
	if err == io.EOF {
		return nil
	}
	return err
}

func TestRateLimits(t *testing.T) {
	c, keys := newCreds(t)
	r := start(t, map[string]string{"AUTH_API_KEYS": keys, "RATE_LIMIT_READ_PER_SECOND": "1", "RATE_LIMIT_READ_BURST": "3",
		"WEBHOOK_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_RATE_LIMIT_BURST": "2", "TEST_ADMIN_KEY": c.admin.Key})
	ctx := metadataCtx(t.Context(), "Bearer "+c.byScope[auth.ScopeTokenRead].Key)
	limited := tokenv1.NewTokenServiceClient(plainConn(t, r.addrs.Token))
	var last error
	for range 4 {
		_, last = limited.ListConnections(ctx, &tokenv1.ListConnectionsRequest{})
	}
	if status.Code(last) != codes.ResourceExhausted {
		t.Fatalf("4th call within the burst of 3: %v", last)
	}
	if wait, ok := ratelimit.RetryAfter(last); !ok || wait <= 0 || wait > 2*time.Second {
		t.Fatalf("RetryInfo %v %v", wait, ok)
	}
	// Another credential has its own bucket.
	if _, err := r.token.ListConnections(t.Context(), &tokenv1.ListConnectionsRequest{}); err != nil {
		t.Fatalf("admin key limited by another key's calls: %v", err)
	}
	// REST: the same credential is limited through the gateway, with 429 and Retry-After.
	req, _ := http.NewRequest("GET", r.base+"/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+c.byScope[auth.ScopeTokenRead].Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("REST over the limit: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Webhook sources are limited per source.
	codesSeen := map[int]int{}
	for i := range 4 {
		resp, err := http.Post(r.base+"/webhooks/zoho", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codesSeen[resp.StatusCode]++
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codesSeen[202] != 2 || codesSeen[429] != 2 {
		t.Fatalf("webhook statuses %v, want two 202 then two 429", codesSeen)
	}
}

// No API key, token or secret sent to the services ends up in their logs, whatever the outcome of the call.
func TestLogsHoldNoSecrets(t *testing.T) {
	c, keys := newCreds(t)
	var buf testutil.LogBuffer
	r := startLogging(t, map[string]string{"AUTH_API_KEYS": keys, "AUDIT_CLIENT_API_KEY": c.admin.Key, "TEST_ADMIN_KEY": c.admin.Key}, &buf)
	secrets := []string{c.admin.Key, c.expired.Key, c.revoked.Key, "AT-SECRET-4711", "RT-SECRET-0815", "WEBHOOK-SECRET-42"}
	for _, k := range []string{c.admin.Key, c.expired.Key, c.revoked.Key, "sgk_admin.forged-forged-forged-forged"} {
		req, _ := http.NewRequest("PUT", r.base+"/v1/connections/zoho/org-9",
			strings.NewReader(`{"accessToken":"AT-SECRET-4711","refreshToken":"RT-SECRET-0815","expiresIn":"3600s"}`))
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("POST", r.base+"/webhooks/zoho", strings.NewReader(`{"token":"WEBHOOK-SECRET-42"}`))
	req.Header.Set("Authorization", "Bearer WEBHOOK-SECRET-42")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// Wait for the run's lines rather than for time: each of the four CreateConnection calls (one
	// accepted, logged at debug; three refused) and the webhook delivery leave a line, and the refusals
	// of the expired and revoked keys reach the audit log through the denial log (whose failures would
	// be logged too).
	var logs string
	var actors map[string]bool
	if _, met := testutil.Wait(10*time.Second, func() bool {
		logs = buf.String()
		list, err := r.audit.ListEvents(t.Context(), &auditv1.ListEventsRequest{Action: "auth.denied", PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		actors = map[string]bool{}
		for _, e := range list.GetEvents() {
			actors[e.GetActor()] = true
		}
		return strings.Count(logs, "CreateConnection") >= 4 && strings.Contains(logs, "webhook") &&
			actors["apikey:expired"] && actors["apikey:revoked"]
	}); !met {
		t.Fatalf("the run's lines never all arrived (denial actors %v); logs:\n%s", actors, logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain a secret (%.12s…)", s)
		}
		if i := strings.IndexByte(s, '.'); strings.HasPrefix(s, "sgk_") && strings.Contains(logs, s[i+1:]) {
			t.Errorf("the logs contain the secret half of a key")
		}
	}
}

func TestProductionModeRefusesInsecureDefaults(t *testing.T) {
	env := config.FromMap(map[string]string{"DATA_DIR": t.TempDir()})
	err := stack.Run(t.Context(), env, discardLog(), nil)
	if err == nil {
		t.Fatal("started without authentication or TLS")
	}
	for _, want := range []string{"AUTH_API_KEYS_FILE", "AUTH_DISABLED=true", "TLS_CERT_FILE", "TLS_DISABLED=true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestAuthDisabledIsExplicitAndLoud(t *testing.T) {
	var buf testutil.LogBuffer
	r := startLogging(t, map[string]string{"AUTH_API_KEYS": "", "AUTH_DISABLED": "true"}, &buf)
	conn, err := grpc.NewClient(r.addrs.Token, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := tokenv1.NewTokenServiceClient(conn).ListConnections(t.Context(), &tokenv1.ListConnectionsRequest{}); err != nil {
		t.Fatalf("AUTH_DISABLED=true still refuses: %v", err)
	}
	if !strings.Contains(buf.String(), "AUTH_DISABLED=true") {
		t.Error("no warning logged for AUTH_DISABLED=true")
	}
}

func TestDevelopmentModeCreatesOneKey(t *testing.T) {
	dir := t.TempDir()
	keys := make([]string, 2)
	for i := range keys {
		r := start(t, map[string]string{"SERGAS_ENV": "development", "DATA_DIR": dir, "AUTH_API_KEYS": "", "TLS_DISABLED": ""})
		keys[i] = r.addrs.DevKey
		conn, err := grpc.NewClient(r.addrs.Token, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(keys[i]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tokenv1.NewTokenServiceClient(conn).ListConnections(t.Context(), &tokenv1.ListConnectionsRequest{}); err != nil {
			t.Fatalf("development key refused: %v", err)
		}
		conn.Close()
	}
	if keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("development key not kept across restarts: %q %q", keys[0], keys[1])
	}
	fi, err := os.Stat(filepath.Join(dir, "dev-api-key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev-api-key: %v mode %v", err, fi.Mode())
	}
}
