package sergasctl_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// TestPostgresBackupAndRestore backs up a populated PostgreSQL installation in the portable format,
// changes it, and restores it: the restored services hold the backup's audit head, token and
// deliveries; the replaced schema is kept aside; the same backup restores into SQLite too; a damaged
// backup is refused with nothing changed.
func TestPostgresBackupAndRestore(t *testing.T) {
	url := dbtest.PostgresURL(t)
	e := newEnv(t, db.Postgres).with("AUDIT_PREVIOUS_SIGNING_KEY_IDS", "00000000000000ff")
	for _, s := range []string{"TOKEN", "AUDIT", "WEBHOOK"} {
		schema := e[s+"_DATABASE_SCHEMA"]
		t.Cleanup(func() { dropSchemasLike(t, url, schema+"_%") })
	}
	mustRun(t, e, 0, "setup")
	head := populate(t, e, db.Postgres)
	wantDeliveries := deliveryStates(t, e)
	dir := t.TempDir()
	var doc backupDoc
	mustRun(t, e, 0, "backup", "--out", dir, "--json").decode(t, &doc)
	var auditManifest string
	for _, b := range doc.Backups {
		if b.Error != "" || !strings.HasSuffix(b.Path, ".export.gz") {
			t.Fatalf("backup of %s: %+v", b.Service, b)
		}
		if b.Service == "audit" {
			if b.Manifest.AuditHead == nil || b.Manifest.AuditHead.Sequence != head.HeadSeq || b.Manifest.AuditHead.Hash != hex.EncodeToString(head.HeadHash) {
				t.Fatalf("audit manifest head: %+v", b.Manifest.AuditHead)
			}
			auditManifest = strings.TrimSuffix(b.Path, ".export.gz") + ".manifest.json"
		}
	}
	// Changes after the backup: more events, a delivery settled.
	populateMore := func() {
		execSQL(t, serviceDB(t, e, "webhook"), "UPDATE deliveries SET status = 3, available_time = NULL WHERE id = 1")
		as := auditStoreOf(serviceDB(t, e, "audit"))
		if _, err := as.Append(context.Background(), pendingEvents(2)); err != nil {
			t.Fatal(err)
		}
	}
	populateMore()

	for _, b := range doc.Backups {
		manifest := strings.TrimSuffix(b.Path, ".export.gz") + ".manifest.json"
		r := mustRun(t, e, 0, "restore", "--yes", manifest)
		if !strings.Contains(r.stdout, "restored") {
			t.Fatalf("restore %s: %s", b.Service, r.stdout)
		}
	}
	got, err := auditStoreOf(serviceDB(t, e, "audit")).ChainState(context.Background())
	if err != nil || got.HeadSeq != head.HeadSeq {
		t.Fatalf("audit head after the restore: %+v %v", got, err)
	}
	if d := deliveryStates(t, e); strings.Join(d, "\n") != strings.Join(wantDeliveries, "\n") {
		t.Fatalf("deliveries after the restore:\n%s", strings.Join(d, "\n"))
	}
	if tok := accessToken(t, e, "crm-1"); tok != "access-crm-1" {
		t.Fatalf("token after the restore: %q", tok)
	}
	var vdoc checkDoc
	mustRun(t, e, 0, "validate", "--json").decode(t, &vdoc)
	if f := vdoc.failed(); len(f) > 0 {
		t.Fatalf("validate after the restore: %v", f)
	}

	// The same backup into SQLite (the format is portable).
	sq := e.with("DATABASE_URL", "sqlite://"+filepath.Join(t.TempDir(), "sergas.db"))
	mustRun(t, sq, 0, "restore", "--yes", auditManifest)
	if got, err := auditStoreOf(serviceDB(t, sq, "audit")).ChainState(context.Background()); err != nil || got.HeadSeq != head.HeadSeq {
		t.Fatalf("audit head restored into SQLite: %+v %v", got, err)
	}

	// A damaged backup is refused.
	export := strings.TrimSuffix(auditManifest, ".manifest.json") + ".export.gz"
	raw, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(export, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, e, 1, "restore", "--yes", auditManifest)
	if !strings.Contains(r.stdout, "checksum") {
		t.Fatalf("restore of a damaged backup: %s", r.stdout)
	}
}
