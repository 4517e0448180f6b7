package sergasctl_test

import (
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
)

func TestHelpOnEveryCommand(t *testing.T) {
	e := env{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir()}
	r := mustRun(t, e, 0, "--help")
	for _, name := range []string{"setup", "validate", "migrate", "health", "maintain", "backup", "restore", "copy", "import-legacy", "bench"} {
		if !strings.Contains(r.stdout, "  "+name+" ") {
			t.Errorf("--help does not list %s:\n%s", name, r.stdout)
		}
		h := mustRun(t, e, 0, name, "--help")
		for _, want := range []string{"Usage: sergasctl " + name, "-service", "-json", "Exit codes:", "3  cannot reach"} {
			if !strings.Contains(h.stdout, want) {
				t.Errorf("%s --help lacks %q:\n%s", name, want, h.stdout)
			}
		}
	}
	if h := mustRun(t, e, 0, "help", "health"); !strings.Contains(h.stdout, "-full") {
		t.Errorf("help health does not describe --full:\n%s", h.stdout)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	e := env{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir()}
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"health", "--bogus"},
		{"health", "--service", "billing"},
		{"migrate", "down"},
		{"migrate", "down", "two"},
		{"migrate", "down", "0"},
		{"migrate", "sideways"},
		{"migrate", "status", "extra"},
		{"copy"},                              // --to is required
		{"copy", "--to", "mysql://db/sergas"}, // not a backend
		{"copy", "--to", "sqlite://" + e["DATA_DIR"] + "/x.db", "extra"},
		{"restore"},
	} {
		r := run(t, e, "", args...)
		if r.code != 2 {
			t.Errorf("sergasctl %q: exit %d, want 2\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if r.stderr == "" {
			t.Errorf("sergasctl %q: nothing on stderr says what is wrong", args)
		}
	}
	same := "sqlite://" + e["DATA_DIR"] + "/sergas.db"
	if r := run(t, e.with("DATABASE_URL", same), "", "copy", "--to", same); r.code != 2 || !strings.Contains(r.stderr, "the target is the source") {
		t.Errorf("copy onto its own source: exit %d\n%s", r.code, r.stderr)
	}
	if entries := dirEntries(t, e["DATA_DIR"]); len(entries) != 0 {
		t.Errorf("usage errors created %v", entries)
	}
}

func TestInvalidConfigurationNamesTheVariable(t *testing.T) {
	e := env{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir(), "SQLITE_BUSY_TIMEOUT": "soon", "TOKEN_DATABASE_URL": "mysql://x"}
	r := run(t, e, "", "health")
	if r.code != 2 || !strings.Contains(r.stderr, "SQLITE_BUSY_TIMEOUT") || !strings.Contains(r.stderr, "TOKEN_DATABASE_URL") {
		t.Fatalf("health with bad variables: exit %d, want 2 naming both variables\n%s", r.code, r.stderr)
	}
	r = run(t, e, "", "validate", "--json")
	var doc checkDoc
	r.decode(t, &doc)
	if r.code != 1 || doc.OK {
		t.Fatalf("validate with bad variables: exit %d, want 1\n%s", r.code, r.stdout)
	}
	status, detail, fix := doc.find(t, "all", "configuration")
	if status != "fail" || !strings.Contains(detail, "SQLITE_BUSY_TIMEOUT") || fix == "" {
		t.Errorf("configuration check: %s %q fix %q", status, detail, fix)
	}
	// Production without the keys: the token service's own LoadConfig says what is missing.
	r = run(t, env{"DATA_DIR": t.TempDir()}, "", "setup", "--service", "token", "--json")
	if r.code != 2 || !strings.Contains(r.stdout, "TOKEN_ENCRYPTION_KEYS") {
		t.Fatalf("setup in production without TOKEN_ENCRYPTION_KEYS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Only the services asked for are configured: the audit service needs no token key.
	audit := env{"DATA_DIR": t.TempDir(), "AUDIT_SIGNING_KEY": t.TempDir() + "/missing.pem"}
	if r := run(t, audit, "", "health", "--service", "audit"); r.code != 3 {
		t.Fatalf("health --service audit in production: exit %d, want 3 (no database yet)\n%s", r.code, r.stderr)
	}
}

func TestNothingSetUpIsUnreachable(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		var doc checkDoc
		r := mustRun(t, e, 3, "validate", "--json")
		r.decode(t, &doc)
		status, detail, fix := doc.find(t, "token", "connect")
		if status != "fail" || !strings.Contains(detail, "does not exist") || !strings.Contains(fix, "sergasctl setup") {
			t.Errorf("connect check: %s %q fix %q", status, detail, fix)
		}
		r = mustRun(t, e, 3, "health", "--json")
		if !strings.Contains(r.stdout, `"error"`) {
			t.Errorf("health --json does not carry the error:\n%s", r.stdout)
		}
		mustRun(t, e, 3, "migrate", "status")
		mustRun(t, e, 3, "migrate", "down", "1", "--yes")
		// Reads create nothing: no file, no schema.
		if d == db.SQLite {
			if entries := dirEntries(t, e["DATA_DIR"]); len(entries) != 0 {
				t.Errorf("read commands created %v", entries)
			}
		} else if exists := schemaExists(t, e["DATABASE_URL"], e["TOKEN_DATABASE_SCHEMA"]); exists {
			t.Error("read commands created the token schema")
		}
	})
}
