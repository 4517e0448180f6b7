package stack_test

import (
	"encoding/base64"
	"encoding/json"
	"github.com/sergas/core/internal/testutil"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/services/token/zohotest"
	zohocrm "github.com/sergas/core/services/webhook/zohocrm/zohotest"
)

// The rules and the dashboard operators load (deploy/), relative to this package.
const (
	deployAlerts    = "../../deploy/prometheus/alerts.yaml"
	deployDashboard = "../../deploy/grafana/sergas-core.json"
)

// faultOnlyMetrics appear only after a fault this test cannot cause in one process (a service the
// gateway cannot reach, a worker that fails, an audit event refused for good): for them the test
// settles for their name being registered by the services' code.
var faultOnlyMetrics = []string{"gateway_service_unreachable_total", "sergas_worker_restarts_total", "audit_outbox_parked_total"}

// prometheusMetrics are made by Prometheus itself, not by a target.
var prometheusMetrics = []string{"up"}

// Every metric the alert rules and the dashboard name is one the real services export: the stack runs,
// one request of each kind is made (a token stored and refreshed, audit events, a checkpoint and a
// verification, a managed Zoho channel renewed, webhooks accepted and refused, deliveries acked, retried,
// dead-lettered and pushed, a refused call), and the gateway's /metrics (the whole process's registry, as in
// `make run`) must hold each name. A renamed metric fails here rather than leaving a silent panel or
// an alert that can never fire.
func TestDeployedRulesAndDashboardNameExportedMetrics(t *testing.T) {
	t.Parallel()
	want := deployedMetricNames(t)
	if len(want) < 20 {
		t.Fatalf("found only %d metric names in the rules and the dashboard: %v", len(want), want)
	}
	t.Logf("%d metric names in the rules and the dashboard: %v", len(want), want)

	oauth := zohotest.New(t)
	crm := zohocrm.New(t)
	crm.AllowToken("1000.at.crm-now")
	oauth.Domain = crm.URL // a refreshed connection keeps calling the CRM stand-in
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	webhookSvc := authtest.NewKey(t, "webhook-svc", auth.ScopeTokenRead)
	r := start(t, map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin, webhookSvc), "TEST_ADMIN_KEY": admin.Key, "AUDIT_CLIENT_API_KEY": admin.Key,
		"TOKEN_CLIENT_API_KEY": webhookSvc.Key, "WEBHOOK_ENCRYPTION_KEYS": testKeyring,
		"WEBHOOK_SOURCES": "zoho:zoho-crm", "WEBHOOK_MAX_BODY_BYTES": "65536",
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": oauth.AccountsURL(), "TOKEN_PROVIDER_ZOHO_CLIENT_ID": oauth.ClientID,
		"TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": oauth.ClientSecret,
		// The channel gauges are process-wide and withdrawn when any renewer stops (another test's stack
		// in this process): renewing every second sets them again within the scrape loop's deadline.
		"WEBHOOK_ZOHO_CHANNEL_CHECK_INTERVAL": "1s",
	})
	ctx := t.Context()
	mustDo := func(method, path, body string, wantCode int) map[string]any {
		t.Helper()
		code, out := r.do(t, method, path, body)
		if code != wantCode {
			t.Fatalf("%s %s: %d %v, want %d", method, path, code, out, wantCode)
		}
		return out
	}

	// Token: a connection stored (its audit event goes through the outbox) and refreshed.
	mustDo("PUT", "/v1/connections/zoho/crm-1", `{"accessToken":"1000.at.crm-now","refreshToken":"`+oauth.IssueRefreshToken()+
		`","expiresIn":"3600s","apiDomain":"`+crm.URL+`"}`, http.StatusOK)
	mustDo("POST", "/v1/connections/zoho/crm-1:refresh", "{}", http.StatusOK)
	crm.AllowToken(latestAccessToken(t, r))

	// A call without a credential is refused before its handler.
	req, _ := http.NewRequest("GET", r.base+"/v1/connections", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credential: %d", resp.StatusCode)
	}

	// Audit: an event, a checkpoint over it, a verification.
	if _, err := r.audit.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "agent-7", Action: "tool.call", Outcome: auditv1.Outcome_OUTCOME_SUCCESS}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.audit.CreateCheckpoint(ctx, &auditv1.CreateCheckpointRequest{}); err != nil {
		t.Fatal(err)
	}
	if v, err := r.audit.VerifyChain(ctx, &auditv1.VerifyChainRequest{}); err != nil || !v.GetValid() {
		t.Fatalf("verify: %v %v", v, err)
	}

	// Webhook: a managed channel, renewed; a subscription with one retry; notifications accepted, a
	// webhook of an unknown source refused.
	out := mustDo("POST", "/v1/webhook/channels", `{"source":"zoho","connectionId":"crm-1","events":["Deals.all"],"notifyUrl":"`+r.base+`/webhooks/zoho"}`, http.StatusOK)
	id, _ := out["channel"].(map[string]any)["channelId"].(string)
	mustDo("POST", "/v1/webhook/channels/"+id+":renew", "{}", http.StatusOK)
	sub, err := r.webhook.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "metrics",
		Filter:      &webhookv1.EventFilter{Sources: []string{"zoho"}},
		RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: ptrTo(int32(1)), BackoffBase: durationpb.New(10 * time.Millisecond), BackoffCap: durationpb.New(10 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	subID := sub.GetSubscription().GetId()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(receiver.Close)
	if _, err := r.webhook.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "metrics-push",
		Filter: &webhookv1.EventFilter{Sources: []string{"zoho"}}, Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
		Push: &webhookv1.PushConfig{Endpoint: receiver.URL, AllowPrivateNetwork: true,
			SigningSecret: "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32))}}); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{"4150868000001", "4150868000002"} {
		if n, err := crm.Notify(ctx, "Deals", "update", []string{rec}, []string{"Stage"}); err != nil || n != 1 {
			t.Fatalf("notify: %d %v", n, err)
		}
	}
	code, _ := r.do(t, "POST", "/webhooks/no-such-source", `{}`)
	if code < 400 {
		t.Fatalf("a webhook of an unknown source answered %d", code)
	}

	// Deliveries: one acked; the other nacked twice, retried once in between, then a dead letter.
	poll := func() *webhookv1.LeasedDelivery {
		t.Helper()
		for range 50 {
			p, err := r.webhook.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: subID, Consumer: "metrics", MaxDeliveries: 1, Wait: durationpb.New(time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			if ds := p.GetDeliveries(); len(ds) == 1 {
				return ds[0]
			}
		}
		t.Fatal("no delivery handed out in 50 polls")
		return nil
	}
	if _, err := r.webhook.Ack(ctx, &webhookv1.AckRequest{AckIds: []string{poll().GetAckId()}}); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		d := poll()
		if got := d.GetDelivery().GetAttemptCount(); got != int32(attempt) {
			t.Fatalf("attempt %d handed out as attempt %d", attempt, got)
		}
		if _, err := r.webhook.Nack(ctx, &webhookv1.NackRequest{AckIds: []string{d.GetAckId()}, Error: "consumer failed"}); err != nil {
			t.Fatal(err)
		}
	}

	// Some series appear a moment later (the outbox sends in the background; the database gauges
	// are read at most every 5 s): scrape until all are there, within a deadline.
	var missing []string
	testutil.Wait(30*time.Second, func() bool {
		fams := scrapeMetrics(t, r.base+"/metrics")
		missing = missing[:0]
		for _, name := range want {
			if !exportedMetric(fams, name) && !slices.Contains(faultOnlyMetrics, name) && !slices.Contains(prometheusMetrics, name) {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	})
	if len(missing) > 0 {
		t.Errorf("the rules or the dashboard name metrics the running stack does not export: %v", missing)
	}
	registered := registeredMetricNames(t)
	for _, name := range faultOnlyMetrics {
		if !registered[name] {
			t.Errorf("%s is listed as a metric that appears only on a fault, but no code registers it", name)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// latestAccessToken is the access token the refresh stored, which the CRM stand-in must accept.
func latestAccessToken(t *testing.T, r *running) string {
	t.Helper()
	code, out := r.do(t, "GET", "/v1/connections/zoho/crm-1/access-token", "")
	tok, _ := out["accessToken"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("access token: %d %v", code, out)
	}
	return tok
}

func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// exportedMetric reports whether name has a series in fams; a histogram's _bucket, _sum and _count are
// its family's.
func exportedMetric(fams map[string]*dto.MetricFamily, name string) bool {
	if f, ok := fams[name]; ok && len(f.GetMetric()) > 0 {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && len(f.GetMetric()) > 0 && f.GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
	}
	return false
}

// registeredMetricNames are the string literals of the services' non-test Go code that look like metric
// names: a metric the test cannot make appear must at least be one the code registers.
func registeredMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"([a-z_:][a-z0-9_:]*)"`)
	out := map[string]bool{}
	for _, root := range []string{"../../services", "../../internal"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
				out[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// deployedMetricNames are the metric names in the alert rules' expressions and the dashboard's queries
// and variables, sorted.
func deployedMetricNames(t *testing.T) []string {
	t.Helper()
	var exprs []string
	raw, err := os.ReadFile(deployAlerts)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	if raw, err = os.ReadFile(deployDashboard); err != nil {
		t.Fatal(err)
	}
	// Every "expr" and "definition" (a variable's query), wherever it sits in the panels or rows.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	walk(dash)
	set := map[string]bool{}
	for _, e := range exprs {
		for _, n := range promqlMetricNames(e) {
			set[n] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var (
	promqlNameMatcher      = regexp.MustCompile(`__name__=~?"([^"]*)"`)
	promqlLabelValuesLabel = regexp.MustCompile(`^(\s*label_values\(.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	promqlStrings          = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promqlBraces           = regexp.MustCompile(`\{[^}]*\}`)
	promqlRanges           = regexp.MustCompile(`\[[^\]]*\]`)
	promqlLabelLists       = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdents           = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlKeywords         = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
)

// promqlMetricNames returns the metric names an expression (or a Grafana label_values query) selects:
// identifiers outside strings, label matchers, ranges and label lists that are not functions or
// keywords, and the names a __name__ matcher lists.
func promqlMetricNames(expr string) []string {
	var out []string
	for _, m := range promqlNameMatcher.FindAllStringSubmatch(expr, -1) {
		out = append(out, strings.Split(m[1], "|")...)
	}
	// A label_values query's last argument is a label name.
	e := promqlLabelValuesLabel.ReplaceAllString(expr, "${1})")
	e = promqlStrings.ReplaceAllString(e, `""`)
	e = promqlBraces.ReplaceAllString(e, " ")
	e = promqlRanges.ReplaceAllString(e, " ")
	e = promqlLabelLists.ReplaceAllString(e, " ")
	for _, loc := range promqlIdents.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(e[loc[0]-1:loc[0]], "0123456789.$") {
			continue // a duration's unit (15m) or a variable
		}
		if promqlKeywords[name] || strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " \t\n"), "(") {
			continue // a keyword, a function or an aggregation
		}
		out = append(out, name)
	}
	return out
}

func TestPromQLMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (job, provider) (rate(token_refreshes_total{result!="success"}[15m])) > 0.5`: {"token_refreshes_total"},
		`x unless x offset 15m`: {"x", "x"},
		`time() - max by (job) (audit_last_checkpoint_timestamp_seconds) > 3600 and on (job) a > b`:        {"audit_last_checkpoint_timestamp_seconds", "a", "b"},
		`histogram_quantile(0.99, sum by (le) (rate(h_bucket{job=~"$job"}[$__rate_interval])))`:            {"h_bucket"},
		`label_values({__name__=~"grpc_server_handled_total|http_requests_total", job=~"$job"}, instance)`: {"grpc_server_handled_total", "http_requests_total"},
		`min(m) < 6 * 3600 and on (job) (up == 1)`:                                                         {"m", "up"},
	} {
		if got := promqlMetricNames(expr); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", expr, got, want)
		}
	}
}
