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
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

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
	Delivery      string `json:"delivery"`
	Event         string `json:"event"`
	RequestID     string `json:"request_id"`
	TokenSHA256   string `json:"token_sha256"`
	AuditEvent    string `json:"audit_event"`
	AuditSequence int64  `json:"audit_sequence"`
	Duplicate     bool   `json:"duplicate"`
	Error         string `json:"error"`
	Summary       bool   `json:"summary"`
	Handled       int    `json:"handled"`
	Acked         int    `json:"acked"`
	Nacked        int    `json:"nacked"`
}

// python/examples/agent.py as a real process against the real stack: with an API key of only the scopes
// an agent needs, it gets a Zoho token (refreshed at the stand-in), consumes the two webhooks ingested
// through the gateway, records an audit event for each with the sender's trace or request id, and acks.
func TestPythonAgentAgainstStack(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(*testing.T) map[string]string { return map[string]string{} },
		"postgres": func(t *testing.T) map[string]string {
			url := dbtest.PostgresURL(t)
			return map[string]string{
				"DATABASE_URL": url, "TOKEN_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
				"AUDIT_DATABASE_SCHEMA": dbtest.NewSchema(t, url), "WEBHOOK_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
				"DATABASE_POOL_SIZE": "2",
			}
		},
	}
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testPythonAgent(t, backend(t))
		})
	}
}

func testPythonAgent(t *testing.T, env map[string]string) {
	py, pyEnv := python(t)
	z := zohotest.New(t)
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	agent := authtest.NewKey(t, "agent", auth.ScopeTokenRead, auth.ScopeAuditWrite, auth.ScopeWebhookConsume)
	for k, v := range map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin, agent), "TEST_ADMIN_KEY": admin.Key, "AUDIT_CLIENT_API_KEY": admin.Key,
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": z.AccountsURL(), "TOKEN_PROVIDER_ZOHO_CLIENT_ID": z.ClientID,
		"TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": z.ClientSecret,
	} {
		env[k] = v
	}
	r := start(t, env)
	ctx := t.Context()

	// A connection whose token expires within the refresh margin: the agent's first GetAccessToken
	// refreshes it at the stand-in, so the token it uses can only have come from there.
	if _, err := r.token.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{
		Provider: "zoho", ConnectionId: "org-1", AccessToken: "1000.at.old", RefreshToken: z.IssueRefreshToken(),
		ExpiresIn: durationpb.New(time.Minute), ApiDomain: "https://www.zohoapis.eu",
	}); err != nil {
		t.Fatal(err)
	}
	sub, err := r.webhook.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "python-agent"})
	if err != nil {
		t.Fatal(err)
	}
	subID := sub.GetSubscription().GetId()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ingest := func(body string, headers ...string) {
		req, err := http.NewRequestWithContext(ctx, "POST", r.base+"/webhooks/zoho", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
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

	runCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(runCtx, py, filepath.Join(pythonDir, "examples", "agent.py"),
		"--token", r.addrs.Token, "--audit", r.addrs.Audit, "--webhook", r.addrs.Webhook, "--insecure",
		"--connection", "org-1", "--subscription", subID, "--consumer", "py-test",
		"--max-deliveries", "2", "--deadline", "60")
	// The key goes by the environment, as the agent wants it (never on a command line).
	cmd.Env = append(pyEnv, "SERGAS_API_KEY="+agent.Key)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	t.Logf("agent output:\n%s%s", stdout, stderr.String())
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	if strings.Contains(string(stdout)+stderr.String(), agent.Key) {
		t.Fatal("the agent printed its API key")
	}

	var lines []agentLine
	sc := bufio.NewScanner(strings.NewReader(string(stdout)))
	for sc.Scan() {
		var l agentLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("agent line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 3 || !lines[2].Summary || lines[2].Handled != 2 || lines[2].Acked != 2 || lines[2].Nacked != 0 {
		t.Fatalf("agent lines %+v, want two deliveries and a summary of two acked", lines)
	}

	// The token came from the stand-in: it refreshed once, the service hands out that token, and it is
	// the one the agent used (its fingerprint; the agent never prints the token).
	if z.Refreshes() != 1 {
		t.Fatalf("%d refreshes at the stand-in, want 1", z.Refreshes())
	}
	tok, err := r.token.GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "org-1"})
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
	dl, err := r.webhook.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{SubscriptionId: subID})
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

	// Two audit events, one per delivery, with the right fields.
	events, err := r.audit.ListEvents(ctx, &auditv1.ListEventsRequest{Action: "agent.webhook.handle"})
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
			e.GetPrincipal() != "apikey:agent" || e.GetOutcome() != auditv1.Outcome_OUTCOME_SUCCESS ||
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
}
