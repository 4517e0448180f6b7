package sergasctl_test

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/audit"
	auditstore "github.com/sergas/core/services/audit/store"
	auditsqlite "github.com/sergas/core/services/audit/store/sqlite"
)

// backupDoc is backup's --json output.
type backupDoc struct {
	Backups []struct {
		Service, Error, Path string
		Deleted              []string
		Manifest             *backupManifest
	}
	OK       bool
	ExitCode int `json:"exit_code"`
}

type backupManifest struct {
	Format        string           `json:"format"`
	Service       string           `json:"service"`
	CreatedAt     time.Time        `json:"created_at"`
	SchemaVersion int              `json:"schema_version"`
	Tables        map[string]int64 `json:"tables"`
	File          string           `json:"file"`
	FileSHA256    string           `json:"file_sha256"`
	DBSHA256      string           `json:"database_sha256"`
	Integrity     string           `json:"integrity_check"`
	AuditHead     *struct {
		Sequence int64  `json:"sequence"`
		Hash     string `json:"hash"`
	} `json:"audit_head"`
}

// TestBackupWhileTheServiceWrites runs sergas-audit as its own process, recording events without pause,
// and backs its SQLite file up meanwhile: the service never fails a write; the backup and its manifest
// are private; the file's checksum is the manifest's; unpacked, the database passes integrity_check,
// has the manifest's row counts, schema version and audit head, and its hash chain verifies.
func TestBackupWhileTheServiceWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	signingKey := filepath.Join(dir, "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil {
		t.Fatal(err)
	}
	k := authtest.NewKey(t, "writer", "audit:write", "audit:read")
	proc := auditService.Start(t, map[string]string{"AUDIT_DATABASE_URL": "sqlite://" + path, "AUDIT_SIGNING_KEY": signingKey, "AUTH_API_KEYS": authtest.JSON(k)})
	client := auditv1.NewAuditServiceClient(proc.Conn(t))

	w := startAuditWriter(t, client, k.Key)
	w.waitFor(t, 50)

	e := env{"DATA_DIR": dir, "AUDIT_DATABASE_URL": "sqlite://" + path, "AUDIT_SIGNING_KEY": signingKey}
	out := filepath.Join(dir, "backups")
	ackedBefore := w.acked.Load()
	var doc backupDoc
	mustRun(t, e, 0, "backup", "--service", "audit", "--out", out, "--json").decode(t, &doc)
	b := doc.Backups[0]
	m := b.Manifest
	if !doc.OK || b.Error != "" || m == nil {
		t.Fatalf("backup: %+v", doc)
	}
	// The service kept writing after the backup, without an error.
	w.waitFor(t, w.acked.Load()+20)
	w.stop()
	if err := w.writeErr.Load(); err != nil {
		t.Fatalf("a write failed while sergasctl backed up: %v", *err)
	}

	stamp := m.CreatedAt.UTC().Format("20060102T150405Z")
	if want := "audit-" + stamp + ".db.gz"; m.File != want || filepath.Base(b.Path) != want {
		t.Errorf("file %q (path %q), want %q", m.File, b.Path, want)
	}
	if got := dirEntries(t, out); strings.Join(got, " ") != "audit-"+stamp+".db.gz audit-"+stamp+".manifest.json" {
		t.Errorf("backup directory holds %v: want the file and its manifest, no temporary files", got)
	}
	for _, f := range []string{b.Path, strings.TrimSuffix(b.Path, ".db.gz") + ".manifest.json"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", f, err, fi.Mode())
		}
	}
	gz, err := os.ReadFile(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(gz); hex.EncodeToString(sum[:]) != m.FileSHA256 {
		t.Errorf("file checksum differs from the manifest's")
	}
	zr, err := gzip.NewReader(strings.NewReader(string(gz)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != m.DBSHA256 {
		t.Errorf("database checksum differs from the manifest's")
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(restored, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: restored}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var check string
	if err := d.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" || m.Integrity != "ok" {
		t.Errorf("integrity_check of the restored copy: %q %v (manifest %q)", check, err, m.Integrity)
	}
	if len(m.Tables) < 3 {
		t.Errorf("manifest tables: %v", m.Tables)
	}
	for tbl, want := range m.Tables {
		var n int64
		if err := d.QueryRow(`SELECT count(*) FROM "` + tbl + `"`).Scan(&n); err != nil || n != want {
			t.Errorf("table %s: %d rows (%v), manifest says %d", tbl, n, err, want)
		}
	}
	if m.Tables["events"] < ackedBefore {
		t.Errorf("the backup holds %d events, the service had acknowledged %d before it began", m.Tables["events"], ackedBefore)
	}
	var version int
	if err := d.QueryRow("SELECT max(version) FROM schema_migrations").Scan(&version); err != nil || version != m.SchemaVersion || version < 5 {
		t.Errorf("schema version %d (%v), manifest %d", version, err, m.SchemaVersion)
	}
	st := auditsqlite.New(&db.SQLiteDB{Write: d, Read: d, Path: restored})
	v, err := st.VerifyChain(context.Background(), auditstore.VerifyParams{})
	if err != nil || !v.Valid {
		t.Fatalf("the restored chain: %+v %v", v, err)
	}
	if m.AuditHead == nil || m.AuditHead.Sequence != v.HeadSeq || m.AuditHead.Hash != hex.EncodeToString(v.HeadHash) || v.HeadSeq != m.Tables["events"] {
		t.Fatalf("manifest audit head %+v, restored chain head %d %x (%d events)", m.AuditHead, v.HeadSeq, v.HeadHash, m.Tables["events"])
	}

	// restore refuses while the service has the file open, and names it.
	manPath := strings.TrimSuffix(b.Path, ".db.gz") + ".manifest.json"
	var rd restoreDoc
	r := run(t, e, "", "restore", "--yes", "--json", manPath)
	r.decode(t, &rd)
	if r.code != 1 || rd.Restored || len(rd.OpenBy) == 0 || rd.OpenBy[0].Command != "sergas-audit" {
		t.Fatalf("restore while the service runs: exit %d, %+v", r.code, rd)
	}
	// Stopped, the service's file is replaced by the backup: its head is the manifest's, and it checks.
	proc.Stop(t)
	mustRun(t, e, 0, "restore", "--yes", "--json", manPath).decode(t, &rd)
	var h healthDoc
	mustRun(t, e, 0, "health", "--service", "audit", "--full", "--json").decode(t, &h)
	if a := h.Services[0].Audit; a == nil || a.HeadSequence != m.AuditHead.Sequence || a.HeadHash != m.AuditHead.Hash {
		t.Errorf("head after restore %+v, manifest %+v", a, m.AuditHead)
	}
	mustRun(t, e, 0, "validate", "--service", "audit")
}

// TestBackupRotation: --keep-daily 2 keeps the new backup and the newest of the day before, and deletes
// the other backups this command made; files it did not make (no manifest of its own) stay.
func TestBackupRotation(t *testing.T) {
	e := newEnv(t, db.SQLite)
	mustRun(t, e, 0, "setup", "--service", "token")
	out := t.TempDir()
	now := time.Now().UTC()
	fake := func(at time.Time, format string) string {
		stamp := at.Format("20060102T150405Z")
		file := "token-" + stamp + ".db.gz"
		if err := os.WriteFile(filepath.Join(out, file), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		man, _ := json.Marshal(map[string]any{"format": format, "service": "token", "file": file})
		if err := os.WriteFile(filepath.Join(out, "token-"+stamp+".manifest.json"), man, 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	yesterday := now.AddDate(0, 0, -1)
	newestYesterday := fake(time.Date(yesterday.Year(), yesterday.Month(), yesterday.Day(), 10, 0, 0, 0, time.UTC), "sergasctl-backup/1")
	olderYesterday := fake(time.Date(yesterday.Year(), yesterday.Month(), yesterday.Day(), 9, 0, 0, 0, time.UTC), "sergasctl-backup/1")
	threeDaysAgo := fake(now.AddDate(0, 0, -3), "sergasctl-backup/1")
	notOurs := fake(now.AddDate(0, 0, -5), "something-else/1")
	if err := os.WriteFile(filepath.Join(out, "token-20200101T000000Z.db.gz"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	var doc backupDoc
	mustRun(t, e, 0, "backup", "--service", "token", "--out", out, "--keep-daily", "2", "--json").decode(t, &doc)
	b := doc.Backups[0]
	sort.Strings(b.Deleted)
	want := []string{olderYesterday, strings.TrimSuffix(olderYesterday, ".db.gz") + ".manifest.json", threeDaysAgo, strings.TrimSuffix(threeDaysAgo, ".db.gz") + ".manifest.json"}
	sort.Strings(want)
	if strings.Join(b.Deleted, " ") != strings.Join(want, " ") {
		t.Errorf("deleted %v, want %v", b.Deleted, want)
	}
	left := strings.Join(dirEntries(t, out), " ")
	for _, f := range []string{b.Manifest.File, newestYesterday, notOurs, "token-20200101T000000Z.db.gz"} {
		if !strings.Contains(left, f) {
			t.Errorf("%s was deleted; left: %s", f, left)
		}
	}
}

// TestBackupRefusals: no --out is a usage error; PostgreSQL is refused with the pg_dump advice.
func TestBackupRefusals(t *testing.T) {
	e := newEnv(t, db.SQLite)
	if r := run(t, e, "", "backup", "--service", "token"); r.code != 2 || !strings.Contains(r.stderr, "--out") {
		t.Errorf("without --out: exit %d, %s", r.code, r.stderr)
	}
}
