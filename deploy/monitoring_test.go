package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sergas/core/internal/testutil"
)

// The rules, the dashboard and their tests. That every metric they name is one the services export is
// checked against the running stack in services/stack/metrics_names_test.go.
const (
	alertRulesFile = "prometheus/alerts.yaml"
	alertTestsFile = "prometheus/alerts_test.yaml"
	ruleCRDFile    = "prometheus/prometheusrule.yaml"
	dashboardFile  = "grafana/sergas-core.json"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(testutil.Tool(t, "promtool"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAlertRulesCheckAndUnitTests(t *testing.T) {
	promtool(t, "check", "rules", alertRulesFile)
	promtool(t, "test", "rules", alertTestsFile)
}

// The PrometheusRule for the Prometheus Operator holds exactly the groups of alerts.yaml, which the unit
// tests cover.
func TestPrometheusRuleHoldsTheAlertRules(t *testing.T) {
	read := func(path string) map[string]any {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	rules, crd := read(alertRulesFile), read(ruleCRDFile)
	if crd["apiVersion"] != "monitoring.coreos.com/v1" || crd["kind"] != "PrometheusRule" {
		t.Fatalf("%s is a %v %v, want a monitoring.coreos.com/v1 PrometheusRule", ruleCRDFile, crd["apiVersion"], crd["kind"])
	}
	spec, _ := crd["spec"].(map[string]any)
	if !reflect.DeepEqual(spec["groups"], rules["groups"]) {
		t.Fatalf("the groups of %s differ from %s: copy them again", ruleCRDFile, alertRulesFile)
	}
}

// An overlay can render the PrometheusRule with kustomize (deploy/prometheus is a kustomization), and
// what it renders still holds the rules of alerts.yaml.
func TestPrometheusRuleRendersWithKustomize(t *testing.T) {
	out, err := exec.Command(testutil.Tool(t, "kustomize"), "build", filepath.Dir(ruleCRDFile)).CombinedOutput()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", filepath.Dir(ruleCRDFile), err, out)
	}
	var rendered, rules map[string]any
	if err := yaml.Unmarshal(out, &rendered); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	spec, _ := rendered["spec"].(map[string]any)
	if rendered["kind"] != "PrometheusRule" || !reflect.DeepEqual(spec["groups"], rules["groups"]) {
		t.Fatalf("kustomize build %s does not render the rules of %s:\n%s", filepath.Dir(ruleCRDFile), alertRulesFile, out)
	}
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// Every alert is something an operator can act on: a severity to route by, and a summary, a description
// and a runbook to read; and the unit tests have a case where it fires and one where it does not.
func TestAlertRulesAreActionableAndTested(t *testing.T) {
	rules := alertRules(t)
	if len(rules) == 0 {
		t.Fatal("no alert rules")
	}
	raw, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				AlertName string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		t.Fatal(err)
	}
	if len(tests.RuleFiles) != 1 || tests.RuleFiles[0] != filepath.Base(alertRulesFile) {
		t.Fatalf("%s tests %v, want [%s]", alertTestsFile, tests.RuleFiles, filepath.Base(alertRulesFile))
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				silent[a.AlertName] = true
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if !strings.HasPrefix(r.Alert, "Sergas") {
			t.Errorf("alert %s: names start with Sergas, so that they are told apart from other systems' alerts", r.Alert)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
		}
		if r.Labels["component"] == "" {
			t.Errorf("alert %s has no component label", r.Alert)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s annotation", r.Alert, a)
			}
		}
		if !fires[r.Alert] || !silent[r.Alert] {
			t.Errorf("alert %s: %s needs a case where it fires (%v) and one where it does not (%v)", r.Alert, alertTestsFile, fires[r.Alert], silent[r.Alert])
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("%s tests alert %s, which %s does not define", alertTestsFile, name, alertRulesFile)
		}
	}
}

type dashboardPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's
}

type dashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	SchemaVersion int              `json:"schemaVersion"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d, raw
}

// allPanels flattens rows, collapsed or not.
func allPanels(ps []dashboardPanel) []dashboardPanel {
	var out []dashboardPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// The dashboard imports into any Grafana 10 or 11 with any Prometheus data source: the data source is
// a variable (no uid of ours is written anywhere), job and instance are variables every query uses,
// ids are unique, and every panel other than a row has a query.
func TestGrafanaDashboard(t *testing.T) {
	d, raw := loadDashboard(t)
	// 36 is Grafana 9.0's schema; 41 is Grafana 11's newest.
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion %d is not one Grafana 10 or 11 writes", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title, so that re-importing replaces it")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "datasource" && v.Query != "prometheus" {
			t.Errorf("datasource variable queries %v, want prometheus", v.Query)
		}
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
		t.Errorf("variables %v: want datasource (datasource), job and instance (query)", vars)
	}
	// Every uid in the file is the variable, or Grafana's own annotation source.
	for _, m := range regexp.MustCompile(`"uid":\s*"([^"]*)"`).FindAllStringSubmatch(string(raw), -1) {
		if m[1] != "${datasource}" && m[1] != "-- Grafana --" && m[1] != d.UID {
			t.Errorf("hard-coded uid %q: use the ${datasource} variable", m[1])
		}
	}
	ids := map[int]string{}
	queries := 0
	for _, p := range allPanels(d.Panels) {
		if p.ID <= 0 {
			t.Errorf("panel %q has no id", p.Title)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q: query %s is empty", p.Title, q.RefID)
			}
			if q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %v, want the ${datasource} variable", p.Title, q.RefID, q.Datasource)
			}
			// Every selector filters by both variables, so that choosing a job or an instance narrows
			// every panel.
			for _, sel := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}`).FindAllString(q.Expr, -1) {
				if !strings.Contains(sel, `job=~"$job"`) || !strings.Contains(sel, `instance=~"$instance"`) {
					t.Errorf("panel %q: selector %s does not filter by $job and $instance", p.Title, sel)
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no query")
	}
}

// grafanaVariables stand in for Grafana's variables, so that the queries parse as PromQL.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$job", ".+", "$instance", ".+")

// Every dashboard query is valid PromQL: promtool parses each as a recording rule.
func TestGrafanaDashboardQueriesParse(t *testing.T) {
	d, _ := loadDashboard(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range allPanels(d.Panels) {
		for _, q := range p.Targets {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:panel_%d:%s", p.ID, q.RefID), Expr: grafanaVariables.Replace(q.Expr)})
		}
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].Record < rules[j].Record })
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}
