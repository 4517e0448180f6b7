package sergasctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/proctest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/sergasctl"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// env is the environment a test runs sergasctl (and opens the services' databases) with.
type env map[string]string

// newEnv is a development installation on dialect: a private DATA_DIR, and on PostgreSQL a fresh schema
// per service in TEST_DATABASE_URL (dropped when the test ends).
func newEnv(t testing.TB, d db.Dialect) env {
	t.Helper()
	e := env{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir()}
	if d == db.Postgres {
		url := dbtest.PostgresURL(t)
		e["DATABASE_URL"] = url
		for _, s := range []string{"TOKEN", "AUDIT", "WEBHOOK"} {
			e[s+"_DATABASE_SCHEMA"] = dbtest.NewSchema(t, url)
		}
	}
	return e
}

func (e env) with(k, v string) env {
	out := env{}
	for a, b := range e {
		out[a] = b
	}
	out[k] = v
	return out
}

// result is one run of sergasctl.
type result struct {
	stdout, stderr string
	code           int
}

// run runs sergasctl in this process with e, stdin and args.
func run(t testing.TB, e env, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := sergasctl.Run(ctx, args, config.FromMap(e), sergasctl.IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
	return result{out.String(), errOut.String(), code}
}

// mustRun runs sergasctl and fails the test unless it exits with want.
func mustRun(t *testing.T, e env, want int, args ...string) result {
	t.Helper()
	r := run(t, e, "", args...)
	if r.code != want {
		t.Fatalf("sergasctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// decode reads r's stdout as one JSON document.
func (r result) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
}

// checkDoc is validate's --json output.
type checkDoc struct {
	Checks []struct {
		Service, Check, Status, Detail, Fix string
	}
	OK       bool
	ExitCode int `json:"exit_code"`
}

// find returns the check of service named name, failing the test when there is none.
func (d checkDoc) find(t *testing.T, service, name string) (status, detail, fix string) {
	t.Helper()
	for _, c := range d.Checks {
		if c.Service == service && c.Check == name {
			return c.Status, c.Detail, c.Fix
		}
	}
	t.Fatalf("no %s check %q in %+v", service, name, d.Checks)
	return
}

// failed lists the checks that failed.
func (d checkDoc) failed() []string {
	var out []string
	for _, c := range d.Checks {
		if c.Status == "fail" {
			out = append(out, c.Service+" "+c.Check+": "+c.Detail)
		}
	}
	return out
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// serviceDB opens a service's database as the service would find it with e (already set up).
func serviceDB(t testing.TB, e env, service string) *db.Handle {
	t.Helper()
	cenv := config.FromMap(e)
	var c db.Config
	switch service {
	case "token":
		c = token.LoadConfig(cenv).DB
	case "audit":
		c = audit.LoadConfig(cenv).DB
	case "webhook":
		c = webhook.LoadConfig(cenv).DB
	}
	if err := cenv.Err(); err != nil {
		t.Fatal(err)
	}
	c.AppName = "sergasctl-test-fixture" // not the service: restore refuses while sergas-<service> is connected
	h, err := db.Open(context.Background(), c, service, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// exec runs a statement on a service's database (test fixtures only).
func execSQL(t *testing.T, h *db.Handle, stmt string, args ...any) {
	t.Helper()
	sqldb := h.SQL()
	if h.Postgres != nil {
		defer sqldb.Close()
	}
	if _, err := sqldb.ExecContext(context.Background(), stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func forDialects(t *testing.T, f func(t *testing.T, d db.Dialect)) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) { f(t, d) })
	}
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func schemaExists(t *testing.T, url, schema string) bool {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ok bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
