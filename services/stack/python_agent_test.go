package stack_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/token/zohotest"
)

// debianPython is the interpreter with Debian's python3-grpcio, python3-grpc-tools and python3-protobuf
// (scripts/packages installs them); a `python3` earlier on PATH (pyenv) has none of them.
const debianPython = "/usr/bin/python3"

// pythonDir is the repository's python/ directory, from this package's.
var pythonDir = filepath.Join("..", "..", "python")

// python finds Debian's python3 with the gRPC packages and protoc, and builds the Python client from the
// repository's protos into a fresh directory with python/generate.py, as a user would. It returns the
// interpreter and the environment that makes `import sergas_client` work.
func python(t *testing.T) (string, []string) {
	t.Helper()
	py := testutil.Tool(t, debianPython)
	protoc := testutil.Tool(t, "protoc")
	if out, err := exec.Command(py, "-c", "import grpc, grpc_tools, google.protobuf").CombinedOutput(); err != nil {
		if os.Getenv("REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s lacks the Debian gRPC packages but REQUIRE_TOOLS=1: run scripts/packages: %s", py, out)
		}
		t.Skipf("%s lacks python3-grpcio, python3-grpc-tools or python3-protobuf (scripts/packages installs them)", py)
	}
	out := t.TempDir()
	// Only what the interpreter needs: a PYTHONHOME or PYTHONPATH left by a pyenv shell would send
	// Debian's python3 to another Python's library. No .pyc files in the source tree either.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PYTHONPATH=" + out, "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join(pythonDir, "generate.py"), "--out", out, "--protoc", protoc)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python/generate.py: %v\n%s", err, b)
	}
	return py, env
}

// The Python client's own unit tests (retry policy, RetryInfo parsing, helpers against in-process
// stand-ins), run with the stubs generated from the current protos.
func TestPythonClientUnitTests(t *testing.T) {
	t.Parallel()
	py, env := python(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "unittest", "discover", "-s", filepath.Join(pythonDir, "tests"), "-p", "test_*.py")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python unit tests: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\nOK") {
		t.Fatalf("python unit tests did not report OK:\n%s", out)
	}
}

// agentLine is one line the example agent prints.
type agentLine struct {
	Delivery      string  `json:"delivery"`
	Event         string  `json:"event"`
	RequestID     string  `json:"request_id"`
	TokenSHA256   string  `json:"token_sha256"`
	AuditEvent    string  `json:"audit_event"`
	AuditSequence int64   `json:"audit_sequence"`
	Duplicate     bool    `json:"duplicate"`
	Error         string  `json:"error"`
	Summary       bool    `json:"summary"`
	Handled       int     `json:"handled"`
	Acked         int     `json:"acked"`
	Nacked        int     `json:"nacked"`
	Retry         string  `json:"retry"`
	Code          string  `json:"code"`
	Wait          float64 `json:"wait"`
}

// agentStack is the stack an agent test runs against, and how the test and the agent reach it.
type agentStack struct {
	r       *running
	token   tokenv1.TokenServiceClient
	audit   auditv1.AuditServiceClient
	webhook webhookv1.WebhookServiceClient
	https   *http.Client // for the gateway
	base    string
	// agentArgs say how the agent connects; agentEnv adds its credential; principal is who it is to the
	// services.
	agentArgs []string
	agentEnv  []string
	principal string
}

// python/examples/agent.py as a real process against the real stack: with a credential of only the
// scopes an agent needs, it gets a Zoho token (refreshed at the stand-in), consumes the two webhooks
// ingested through the gateway, records an audit event for each with the sender's trace or request id,
// and acks. On both backends; over mTLS with the certificate's identity as the only credential; and with
// a write budget so small that the services refuse calls with RESOURCE_EXHAUSTED and a RetryInfo, which
// the client waits out and retries, with no event recorded twice.
func TestPythonAgentAgainstStack(t *testing.T) {
	t.Parallel()
	postgres := func(t *testing.T) map[string]string {
		url := dbtest.PostgresURL(t)
		return map[string]string{
			"DATABASE_URL": url, "TOKEN_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
			"AUDIT_DATABASE_SCHEMA": dbtest.NewSchema(t, url), "WEBHOOK_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
			"DATABASE_POOL_SIZE": "2",
		}
	}
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); testPythonAgent(t, map[string]string{}, false) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); testPythonAgent(t, postgres(t), false) })
	t.Run("mtls", func(t *testing.T) { t.Parallel(); testPythonAgent(t, map[string]string{"mtls": "1"}, false) })
	t.Run("rate_limited", func(t *testing.T) {
		t.Parallel()
		// One write a burst, two a second, per credential: the agent's Ack and next Poll come back to back.
		testPythonAgent(t, map[string]string{"RATE_LIMIT_PER_SECOND": "2", "RATE_LIMIT_BURST": "1"}, true)
	})
}

// startAgentStack starts the stack for an agent test: plaintext with an API key, or (env["mtls"]) TLS
// with client certificates required, the agent known by its certificate alone.
func startAgentStack(t *testing.T, env map[string]string, z *zohotest.Server) *agentStack {
	t.Helper()
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	agent := authtest.NewKey(t, "agent", auth.ScopeTokenRead, auth.ScopeAuditWrite, auth.ScopeWebhookConsume)
	for k, v := range map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin, agent), "TEST_ADMIN_KEY": admin.Key, "AUDIT_CLIENT_API_KEY": admin.Key,
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": z.AccountsURL(), "TOKEN_PROVIDER_ZOHO_CLIENT_ID": z.ClientID,
		"TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": z.ClientSecret,
	} {
		env[k] = v
	}
	_, mtls := env["mtls"]
	delete(env, "mtls")
	if !mtls {
		r := start(t, env)
		return &agentStack{
			r: r, token: r.token, audit: r.audit, webhook: r.webhook, https: http.DefaultClient, base: r.base,
			agentArgs: []string{"--token", r.addrs.Token, "--audit", r.addrs.Audit, "--webhook", r.addrs.Webhook, "--insecure"},
			// The key goes by the environment, as the agent wants it (never on a command line).
			agentEnv: []string{"SERGAS_API_KEY=" + agent.Key}, principal: "apikey:agent",
		}
	}
	const agentID = "spiffe://sergas.test/python-agent"
	ca := newCA(t)
	serverCert, serverKey := ca.issue(t, "server", "sergas-services", 10)
	gwCert, gwKey := ca.issue(t, "gateway", "sergas-gateway", 11)
	agentCert, agentKey := ca.issue(t, "agent", "python-agent", 12, agentID)
	for k, v := range map[string]string{
		"TLS_DISABLED": "", "TLS_CERT_FILE": serverCert, "TLS_KEY_FILE": serverKey, "TLS_CLIENT_CA_FILE": ca.path("ca.pem"),
		"GRPC_CLIENT_CA_FILE": ca.path("ca.pem"), "GRPC_CLIENT_CERT_FILE": gwCert, "GRPC_CLIENT_KEY_FILE": gwKey,
		"GRPC_CLIENT_SERVER_NAME": "localhost",
		"AUTH_TLS_IDENTITIES":     `{"` + agentID + `": ["token:read", "audit:write", "webhook:consume"]}`,
	} {
		env[k] = v
	}
	r := start(t, env)
	// The test's own calls: the admin key over mTLS (a key wins over the certificate's identity).
	dial := func(addr string) *grpc.ClientConn {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(ca.clientTLS(t, agentCert, agentKey))), authtest.Bearer(admin.Key))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return &agentStack{
		r: r, token: tokenv1.NewTokenServiceClient(dial(r.addrs.Token)), audit: auditv1.NewAuditServiceClient(dial(r.addrs.Audit)),
		webhook: webhookv1.NewWebhookServiceClient(dial(r.addrs.Webhook)),
		https:   &http.Client{Transport: &http.Transport{TLSClientConfig: ca.clientTLS(t, "", "")}},
		base:    "https://" + r.addrs.Gateway,
		agentArgs: []string{"--token", r.addrs.Token, "--audit", r.addrs.Audit, "--webhook", r.addrs.Webhook,
			"--ca-file", ca.path("ca.pem"), "--cert-file", agentCert, "--key-file", agentKey, "--server-name", "localhost"},
		principal: "mtls:" + agentID,
	}
}

func testPythonAgent(t *testing.T, env map[string]string, rateLimited bool) {
	py, pyEnv := python(t)
	z := zohotest.New(t)
	st := startAgentStack(t, env, z)
	ctx := t.Context()

	// A connection whose token expires within the refresh margin: the agent's first GetAccessToken
	// refreshes it at the stand-in, so the token it uses can only have come from there.
	if _, err := st.token.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{
		Provider: "zoho", ConnectionId: "org-1", AccessToken: "1000.at.old", RefreshToken: z.IssueRefreshToken(),
		ExpiresIn: durationpb.New(time.Minute), ApiDomain: "https://www.zohoapis.eu",
	}); err != nil {
		t.Fatal(err)
	}
	sub, err := st.webhook.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "python-agent"})
	if err != nil {
		t.Fatal(err)
	}
	subID := sub.GetSubscription().GetId()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ingest := func(body string, headers ...string) {
		req, err := http.NewRequestWithContext(ctx, "POST", st.base+"/webhooks/zoho", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := st.https.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("ingest: %d", resp.StatusCode)
		}
	}
	ingest(`{"module":"Deals","ids":["1"]}`, "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	ingest(`{"module":"Deals","ids":["2"]}`, "X-Request-Id", "req-42")

	lines, retries := runAgent(t, py, pyEnv, st, subID)
	if len(lines) != 3 || !lines[2].Summary || lines[2].Handled != 2 || lines[2].Acked != 2 || lines[2].Nacked != 0 {
		t.Fatalf("agent lines %+v, want two deliveries and a summary of two acked", lines)
	}
	if rateLimited {
		// The precondition of this case: the services refused with a RetryInfo and the client waited it
		// out (a RESOURCE_EXHAUSTED without one would have failed the run).
		if len(retries) == 0 {
			t.Fatal("no call was rate limited: the case tests nothing")
		}
		for _, l := range retries {
			if l.Code != "RESOURCE_EXHAUSTED" || l.Wait <= 0 || l.Wait > 1.5 {
				t.Errorf("retry %+v, want RESOURCE_EXHAUSTED after the RetryInfo delay (at most 0.5 s and a tenth at 2/s)", l)
			}
		}
	} else if len(retries) != 0 {
		t.Errorf("retries without a reason: %+v", retries)
	}

	// The token came from the stand-in: it refreshed once, the service hands out that token, and it is
	// the one the agent used (its fingerprint; the agent never prints the token).
	if z.Refreshes() != 1 {
		t.Fatalf("%d refreshes at the stand-in, want 1", z.Refreshes())
	}
	tok, err := st.token.GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "org-1"})
	if err != nil || !z.Valid(tok.GetAccessToken()) || tok.GetAccessToken() == "1000.at.old" {
		t.Fatalf("token %v %v: not the stand-in's", tok, err)
	}
	sum := sha256.Sum256([]byte(tok.GetAccessToken()))
	for _, l := range lines[:2] {
		if l.TokenSHA256 != hex.EncodeToString(sum[:])[:16] {
			t.Errorf("delivery %s used token %s, not the stand-in's", l.Delivery, l.TokenSHA256)
		}
	}

	// Both deliveries delivered.
	dl, err := st.webhook.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{SubscriptionId: subID})
	if err != nil {
		t.Fatal(err)
	}
	if len(dl.GetDeliveries()) != 2 {
		t.Fatalf("deliveries %v, want 2", dl.GetDeliveries())
	}
	deliveryOf := map[string]*webhookv1.Delivery{}
	for _, d := range dl.GetDeliveries() {
		if d.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED {
			t.Errorf("delivery %s is %v, want delivered", d.GetId(), d.GetStatus())
		}
		deliveryOf[d.GetEventId()] = d
	}

	// Two audit events, one per delivery (none twice, retries or not), with the right fields.
	events, err := st.audit.ListEvents(ctx, &auditv1.ListEventsRequest{Action: "agent.webhook.handle"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.GetEvents()) != 2 {
		t.Fatalf("audit events %v, want 2", events.GetEvents())
	}
	wantRequestIDs := map[string]bool{traceID: true, "req-42": true}
	reported := map[string]bool{lines[0].AuditEvent: true, lines[1].AuditEvent: true}
	for i, e := range events.GetEvents() {
		md := e.GetMetadata().GetFields()
		eventID := md["event_id"].GetStringValue()
		d := deliveryOf[eventID]
		if d == nil {
			t.Fatalf("audit event %d names event %q, which has no delivery", i, eventID)
		}
		if e.GetActor() != "agent:python-example" || e.GetActorType() != auditv1.ActorType_ACTOR_TYPE_AGENT ||
			e.GetPrincipal() != st.principal || e.GetOutcome() != auditv1.Outcome_OUTCOME_SUCCESS ||
			e.GetResource() != "webhook/zoho/"+eventID || e.GetSessionId() != "py-test" ||
			e.GetIdempotencyKey() != "webhook-delivery/"+d.GetId() ||
			md["delivery_id"].GetStringValue() != d.GetId() || md["subscription_id"].GetStringValue() != subID ||
			md["source"].GetStringValue() != "zoho" || md["api_domain"].GetStringValue() != "https://www.zohoapis.eu" {
			t.Errorf("audit event %d: %v", i, e)
		}
		if !wantRequestIDs[e.GetRequestId()] {
			t.Errorf("audit event %d request id %q, want the trace id or X-Request-Id of its webhook", i, e.GetRequestId())
		}
		delete(wantRequestIDs, e.GetRequestId())
		if !reported[e.GetId()] {
			t.Errorf("audit event %s is not one the agent reported", e.GetId())
		}
	}

	// Delivery is at least once. Both events handed out again (as after a lost Ack or an expired lease):
	// the agent's idempotency keys, derived from the delivery, make its second run record nothing new.
	rep, err := st.webhook.ReplayEvents(ctx, &webhookv1.ReplayEventsRequest{SubscriptionId: subID, StartTime: timestamppb.New(time.Now().Add(-time.Hour))})
	if err != nil || rep.GetReplayed() != 2 {
		t.Fatalf("replay: %v %v, want 2 replayed", rep, err)
	}
	again, _ := runAgent(t, py, pyEnv, st, subID)
	if len(again) != 3 || again[2].Acked != 2 {
		t.Fatalf("second run %+v, want two deliveries acked", again)
	}
	for _, l := range again[:2] {
		if !l.Duplicate || !reported[l.AuditEvent] {
			t.Errorf("redelivery %+v: want the first run's audit event, as a duplicate", l)
		}
	}
	if events, err := st.audit.ListEvents(ctx, &auditv1.ListEventsRequest{Action: "agent.webhook.handle"}); err != nil || len(events.GetEvents()) != 2 {
		t.Fatalf("after the redelivery: %d audit events (%v), want still 2", len(events.GetEvents()), err)
	}
}

// runAgent runs python/examples/agent.py for two deliveries of subID and returns the lines it printed
// about deliveries (and its summary), and those about retries.
func runAgent(t *testing.T, py string, pyEnv []string, st *agentStack, subID string) (lines, retries []agentLine) {
	t.Helper()
	runCtx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args := append([]string{filepath.Join(pythonDir, "examples", "agent.py")}, st.agentArgs...)
	cmd := exec.CommandContext(runCtx, py, append(args, "--connection", "org-1", "--subscription", subID,
		"--consumer", "py-test", "--max-deliveries", "2", "--deadline", "60")...)
	cmd.Env = slices.Concat(pyEnv, st.agentEnv)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	t.Logf("agent output:\n%s%s", stdout, stderr.String())
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	for _, e := range st.agentEnv {
		if secret := e[strings.IndexByte(e, '=')+1:]; strings.Contains(string(stdout)+stderr.String(), secret) {
			t.Fatal("the agent printed its API key")
		}
	}

	sc := bufio.NewScanner(strings.NewReader(string(stdout)))
	for sc.Scan() {
		var l agentLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("agent line %q: %v", sc.Text(), err)
		}
		if l.Retry != "" {
			retries = append(retries, l)
			continue
		}
		lines = append(lines, l)
	}
	return lines, retries
}
