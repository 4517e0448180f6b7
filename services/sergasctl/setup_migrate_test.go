package sergasctl_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/migrations"
)

// latest is the newest migration of service in the embedded tree.
func latest(t *testing.T, service string, d db.Dialect) int {
	t.Helper()
	fsys, err := migrate.Sub(migrations.FS, service, string(d))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrate.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

type setupDoc struct {
	Services []struct {
		Service string
		Applied int `json:"migrations_applied"`
		Version int `json:"schema_version"`
		Keys    []string
	}
	APIKey string `json:"api_key"`
}

type statusDoc struct {
	Services []struct {
		Service  string
		Version  int
		Latest   int
		Pending  []string
		State    string
		Rollback []int `json:"rollback_available"`
		Changed  []string
		Applied  []migrate.Applied
	}
}

func TestSetupIsIdempotent(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		var first, second setupDoc
		mustRun(t, e, 0, "setup", "--json").decode(t, &first)
		mustRun(t, e, 0, "setup", "--json").decode(t, &second)
		if len(first.Services) != 3 || len(second.Services) != 3 {
			t.Fatalf("setup reported %d and %d services, want 3", len(first.Services), len(second.Services))
		}
		for i, s := range first.Services {
			want := latest(t, s.Service, d)
			if s.Applied != want || s.Version != want {
				t.Errorf("first setup of %s: applied %d, version %d; want %d", s.Service, s.Applied, s.Version, want)
			}
			if second.Services[i].Applied != 0 || second.Services[i].Version != want {
				t.Errorf("second setup of %s applied %d, version %d", s.Service, second.Services[i].Applied, second.Services[i].Version)
			}
			if !strings.Contains(strings.Join(s.Keys, " "), "created") || !strings.Contains(strings.Join(second.Services[i].Keys, " "), "kept as it was") {
				t.Errorf("%s keys: first %q, second %q", s.Service, s.Keys, second.Services[i].Keys)
			}
		}
		if !strings.Contains(first.APIKey, "created") || !strings.Contains(second.APIKey, "kept") {
			t.Errorf("api key: first %q, second %q", first.APIKey, second.APIKey)
		}
		// The keys are the ones the services make and read, private to this user.
		dir := e["DATA_DIR"]
		files := []string{"dev-token-key", "dev-webhook-key", "dev-audit-signing-key", "dev-api-key"}
		if d == db.SQLite {
			files = append(files, "token.db", "audit.db", "webhook.db")
		}
		for _, f := range files {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Errorf("setup did not make %s: %v", f, err)
				continue
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %o, want 0600", f, fi.Mode().Perm())
			}
		}
		// The services open what setup made: their own open checks the schema version without migrating.
		for _, s := range []string{"token", "audit", "webhook"} {
			serviceDB(t, e, s)
		}
	})
}

func TestMigrateStatusDownUp(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup", "--service", "webhook")
		n := latest(t, "webhook", d)
		status := func() (v int, state string, pending []string) {
			t.Helper()
			var doc statusDoc
			mustRun(t, e, 0, "migrate", "status", "--service", "webhook", "--json").decode(t, &doc)
			if len(doc.Services) != 1 || doc.Services[0].Latest != n {
				t.Fatalf("status: %+v", doc)
			}
			s := doc.Services[0]
			if len(s.Applied) != s.Version {
				t.Errorf("status lists %d applied migrations at version %d", len(s.Applied), s.Version)
			}
			return s.Version, s.State, s.Pending
		}
		if v, state, pending := status(); v != n || state != "current" || len(pending) != 0 {
			t.Fatalf("after setup: version %d %s pending %v", v, state, pending)
		}
		// Not confirmed: nothing changes, and the exit code says so.
		r := run(t, e, "no\n", "migrate", "down", "1", "--service", "webhook")
		if r.code != 1 || !strings.Contains(r.stderr, "Type yes") || !strings.Contains(r.stderr, "nothing was rolled back") {
			t.Fatalf("declined down: exit %d\n%s", r.code, r.stderr)
		}
		if v, _, _ := status(); v != n {
			t.Fatalf("a declined down moved the schema to %d", v)
		}
		// No terminal, no --yes: stdin is empty, which declines.
		if r := run(t, e, "", "migrate", "down", "1", "--service", "webhook"); r.code != 1 {
			t.Fatalf("down without an answer: exit %d", r.code)
		}
		// Confirmed on stdin.
		r = run(t, e, "yes\n", "migrate", "down", "1", "--service", "webhook")
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("rolled back %04d_", n)) {
			t.Fatalf("confirmed down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if v, state, pending := status(); v != n-1 || state != "behind" || len(pending) != 1 {
			t.Fatalf("after down 1: version %d %s pending %v", v, state, pending)
		}
		// A service refuses the older schema; validate names the fix.
		var doc checkDoc
		mustRun(t, e, 1, "validate", "--service", "webhook", "--json").decode(t, &doc)
		if status, _, fix := doc.find(t, "webhook", "schema"); status != "fail" || !strings.Contains(fix, "sergasctl migrate up --service webhook") {
			t.Errorf("schema check after down: %s fix %q", status, fix)
		}
		if status, _, _ := doc.find(t, "webhook", "indexes"); status != "ok" {
			t.Errorf("indexes are compared with the migrations up to the database's version: %s", status)
		}
		// --yes, twice more, flags after the count.
		var down statusDoc
		mustRun(t, e, 0, "migrate", "down", "2", "--service", "webhook", "--yes", "--json").decode(t, &down)
		if got := down.Services[0]; got.Version != n-3 || len(got.Changed) != 2 {
			t.Fatalf("down 2: %+v", got)
		}
		mustRun(t, e, 3, "validate", "--service", "token") // the other services were never set up: untouched
		var up statusDoc
		mustRun(t, e, 0, "migrate", "up", "--service", "webhook", "--json").decode(t, &up)
		if got := up.Services[0]; got.Version != n || got.Changed[0] != "applied 3 migration(s)" {
			t.Fatalf("up: %+v", got)
		}
		mustRun(t, e, 0, "validate", "--service", "webhook")
		// "sergasctl migrate" alone is up, as the services' start-up error tells operators.
		mustRun(t, e, 0, "migrate", "--service", "all")
		if v, state, _ := status(); v != n || state != "current" {
			t.Fatalf("after up: %d %s", v, state)
		}
	})
}

func TestDownRefusedWithoutDownMigration(t *testing.T) {
	downs := map[int]string{3: "x", 2: "y"}
	if vs, err := migrate.DownPlan(3, 2, 3, downs); err != nil || len(vs) != 2 || vs[0] != 3 || vs[1] != 2 {
		t.Fatalf("plan 3,2: %v %v", vs, err)
	}
	if _, err := migrate.DownPlan(3, 3, 3, downs); err == nil || !strings.Contains(err.Error(), "0001 has no down migration") {
		t.Fatalf("a plan through a version without a down file: %v", err)
	}
	if _, err := migrate.DownPlan(4, 1, 3, downs); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("a schema newer than the binary: %v", err)
	}
	if vs, err := migrate.DownPlan(1, 5, 3, map[int]string{1: "z"}); err != nil || len(vs) != 1 {
		t.Fatalf("down more than applied stops at zero: %v %v", vs, err)
	}
}
