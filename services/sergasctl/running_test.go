package sergasctl_test

import (
	"path/filepath"
	"strings"
	"testing"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/proctest"
	"github.com/sergas/core/services/audit"
)

var auditService = proctest.Service{Name: "audit", Package: "github.com/sergas/core/services/audit/cmd/sergas-audit"}

// TestValidateAndHealthWhileTheServiceWrites runs sergas-audit as its own process on a SQLite file, which
// it holds open in WAL mode while a client records events without pause, and runs validate and health on
// the same file meanwhile: both pass, the round trip takes the write lock between the service's commits,
// and the service's writes never fail or stop while sergasctl reads.
func TestValidateAndHealthWhileTheServiceWrites(t *testing.T) {
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
	w.waitFor(t, 20)

	e := env{"DATA_DIR": dir, "AUDIT_DATABASE_URL": "sqlite://" + path, "AUDIT_SIGNING_KEY": signingKey}
	var doc checkDoc
	r := run(t, e, "", "validate", "--service", "audit", "--json")
	r.decode(t, &doc)
	if r.code != 0 {
		t.Fatalf("validate while the service writes: exit %d, failed %v", r.code, doc.failed())
	}
	if status, detail, _ := doc.find(t, "audit", "pragmas"); status != "ok" || !strings.Contains(detail, "journal_mode=wal") {
		t.Errorf("pragmas: %s %s", status, detail)
	}
	if status, _, _ := doc.find(t, "audit", "round trip"); status != "ok" {
		t.Errorf("round trip: %s", status)
	}
	before := w.acked.Load()
	var h healthDoc
	mustRun(t, e, 0, "health", "--service", "audit", "--full", "--json").decode(t, &h)
	s := h.Services[0]
	if s.SQLite == nil || s.SQLite.JournalMode != "wal" || *s.SQLite.WALBytes == 0 || strings.Join(s.SQLite.Integrity, ",") != "ok" {
		t.Errorf("health of the live file: %+v", s.SQLite)
	}
	if len(s.SQLite.OpenBy) == 0 || s.SQLite.OpenBy[0].Command != "sergas-audit" {
		t.Errorf("health names the processes with the file open: %+v, want sergas-audit", s.SQLite.OpenBy)
	}
	if s.Audit == nil || s.Audit.HeadSequence < 20 {
		t.Errorf("audit head %+v, want at least the 20 events acknowledged before", s.Audit)
	}
	// The service kept writing after sergasctl was done, without an error.
	w.waitFor(t, before+20)
	w.stop()
	if err := w.writeErr.Load(); err != nil {
		t.Fatalf("a write failed while sergasctl ran: %v", *err)
	}
	// And the head health saw was the service's own: what it acknowledged since is after it.
	var after healthDoc
	mustRun(t, e, 0, "health", "--service", "audit", "--json").decode(t, &after)
	if got := after.Services[0].Audit.HeadSequence; got < w.acked.Load() || got <= s.Audit.HeadSequence {
		t.Errorf("head after: %d, acknowledged %d, head seen while running %d", got, w.acked.Load(), s.Audit.HeadSequence)
	}
}
