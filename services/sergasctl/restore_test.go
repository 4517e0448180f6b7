package sergasctl_test

import (
	"database/sql"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
)

type restoreDoc struct {
	Restored bool
	KeptAs   string `json:"previous_kept_as"`
	Error    string
	Refusal  string
	OpenBy   []struct {
		PID     int
		Command string
	} `json:"open_by"`
	ExitCode int `json:"exit_code"`
}

// TestRestore backs up an audit database, changes it, and restores the backup: refused while another
// process has the file open (naming it), without a yes, for a damaged file and for a manifest that does
// not match; then restored with --yes: the rows are the backup's, the file is in WAL mode and 0600, and
// the database before the restore is kept beside it with its rows.
func TestRestore(t *testing.T) {
	e := newEnv(t, db.SQLite)
	mustRun(t, e, 0, "setup", "--service", "audit")
	h := serviceDB(t, e, "audit")
	execSQL(t, h, "CREATE TABLE restore_marker (n INTEGER)")
	execSQL(t, h, "INSERT INTO restore_marker VALUES (1), (2), (3)")
	out := t.TempDir()
	var b backupDoc
	mustRun(t, e, 0, "backup", "--service", "audit", "--out", out, "--json").decode(t, &b)
	gzPath := b.Backups[0].Path
	manPath := strings.TrimSuffix(gzPath, ".db.gz") + ".manifest.json"
	execSQL(t, h, "INSERT INTO restore_marker VALUES (4), (5)")
	h.Close()
	path := h.SQLite.Path
	count := func(file string) int {
		t.Helper()
		d := serviceDBAt(t, file)
		var n int
		if err := d.QueryRow("SELECT count(*) FROM restore_marker").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Another process holds the file: refused, and it is named.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("sleep", "120")
	holder.ExtraFiles = []*os.File{f}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var doc restoreDoc
	r := run(t, e, "", "restore", "--json", "--yes", manPath)
	r.decode(t, &doc)
	holder.Process.Kill()
	holder.Wait()
	if r.code != 1 || doc.Restored || len(doc.OpenBy) != 1 || doc.OpenBy[0].Command != "sleep" || !strings.Contains(doc.Error, "stop the services") {
		t.Fatalf("restore while open: exit %d, %+v", r.code, doc)
	}

	// Not confirmed: nothing changes.
	r = run(t, e, "no\n", "restore", gzPath)
	if r.code != 1 || !strings.Contains(r.stdout, "not confirmed") || count(path) != 5 {
		t.Fatalf("unconfirmed restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A manifest whose counts differ from the file, and a damaged file: refused.
	raw, _ := os.ReadFile(manPath)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["tables"].(map[string]any)["restore_marker"] = 4
	badMan := filepath.Join(out, "audit-20000101T000000Z.manifest.json")
	bad, _ := json.Marshal(m)
	if err := os.WriteFile(badMan, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, e, "", "restore", "--yes", "--json", badMan)
	r.decode(t, &doc)
	if r.code != 1 || !strings.Contains(doc.Error, "restore_marker has 3 row(s), its manifest says 4") {
		t.Errorf("manifest that does not match: exit %d, %+v", r.code, doc)
	}
	gz, _ := os.ReadFile(gzPath)
	gz[len(gz)/2] ^= 0xff
	damaged := filepath.Join(out, "audit-20000101T000001Z.db.gz")
	if err := os.WriteFile(damaged, gz, 0o600); err != nil {
		t.Fatal(err)
	}
	m["tables"].(map[string]any)["restore_marker"] = 3
	m["file"] = filepath.Base(damaged)
	bad, _ = json.Marshal(m)
	if err := os.WriteFile(strings.TrimSuffix(damaged, ".db.gz")+".manifest.json", bad, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, e, "", "restore", "--yes", "--json", damaged)
	r.decode(t, &doc)
	if r.code != 1 || !strings.Contains(doc.Error, "checksum") {
		t.Errorf("damaged backup: exit %d, %+v", r.code, doc)
	}
	if r = run(t, e, "", "restore", "--service", "token", manPath); r.code != 2 {
		t.Errorf("restore of an audit backup as token: exit %d", r.code)
	}
	if count(path) != 5 {
		t.Fatal("a refused restore changed the database")
	}

	// Restored.
	r = run(t, e, "", "restore", "--yes", "--json", manPath)
	r.decode(t, &doc)
	if r.code != 0 || !doc.Restored {
		t.Fatalf("restore: exit %d, %+v\n%s", r.code, doc, r.stderr)
	}
	if n := count(path); n != 3 {
		t.Errorf("restored database has %d marker rows, the backup 3", n)
	}
	if n := count(doc.KeptAs); n != 5 {
		t.Errorf("the database kept as %s has %d marker rows, want 5", doc.KeptAs, n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored file mode: %v %v", fi.Mode(), err)
	}
	var check struct {
		Services []struct {
			SQLite *struct {
				JournalMode string   `json:"journal_mode"`
				Integrity   []string `json:"integrity"`
			}
			Audit *struct {
				HeadSequence int64 `json:"head_sequence"`
			}
		}
	}
	mustRun(t, e, 0, "health", "--service", "audit", "--full", "--json").decode(t, &check)
	if s := check.Services[0].SQLite; s.JournalMode != "wal" || strings.Join(s.Integrity, ",") != "ok" {
		t.Errorf("health after restore: %+v", s)
	}
	mustRun(t, e, 0, "validate", "--service", "audit")
}

// serviceDBAt opens a SQLite file for the test's reads, closed when the test ends.
func serviceDBAt(t *testing.T, file string) *sql.DB {
	t.Helper()
	d, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: file, RawQuery: "mode=ro"}).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
