package sergasctl_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/services/audit"
	auditstore "github.com/sergas/core/services/audit/store"
)

// BenchmarkBackupOneGigabyte grows an audit SQLite file to BACKUP_BENCH_MB (default 1024) MiB, starts
// sergas-audit on it with a client recording events without pause, and times sergasctl backup of it
// meanwhile: seconds, MiB/s of database read, the events the service acknowledged during the backup
// (the writes go on) beside the rate over 3 s without a backup, and any write that failed (the benchmark fails on one). Run with -benchtime=1x.
func BenchmarkBackupOneGigabyte(b *testing.B) {
	mib := 1024
	if v, err := strconv.Atoi(os.Getenv("BACKUP_BENCH_MB")); err == nil && v > 0 {
		mib = v
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "audit.db")
	signingKey := filepath.Join(dir, "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil {
		b.Fatal(err)
	}
	e := env{"DATA_DIR": dir, "AUDIT_DATABASE_URL": "sqlite://" + path, "AUDIT_SIGNING_KEY": signingKey}
	if r := run(b, e, "", "setup", "--service", "audit"); r.code != 0 {
		b.Fatal(r.stderr)
	}
	seedAuditBytes(b, e, path, int64(mib)<<20)

	k := authtest.NewKey(b, "writer", "audit:write", "audit:read")
	proc := auditService.Start(b, map[string]string{"AUDIT_DATABASE_URL": "sqlite://" + path, "AUDIT_SIGNING_KEY": signingKey, "AUTH_API_KEYS": authtest.JSON(k)})
	w := startAuditWriter(b, auditv1.NewAuditServiceClient(proc.Conn(b)), k.Key)
	w.waitFor(b, 20)
	b.ResetTimer()
	for i := range b.N {
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		// The service's write rate without a backup, over the same writer, for comparison.
		b.StopTimer()
		quiet0, quietStart := w.acked.Load(), time.Now()
		time.Sleep(3 * time.Second)
		quietRate := float64(w.acked.Load()-quiet0) / time.Since(quietStart).Seconds()
		b.StartTimer()
		before := w.acked.Load()
		start := time.Now()
		r := run(b, e, "", "backup", "--service", "audit", "--out", filepath.Join(dir, fmt.Sprint("backups-", i)))
		took := time.Since(start)
		if r.code != 0 {
			b.Fatalf("backup: %s %s", r.stdout, r.stderr)
		}
		during := w.acked.Load() - before
		if err := w.writeErr.Load(); err != nil {
			b.Fatalf("a write failed during the backup: %v", *err)
		}
		b.ReportMetric(took.Seconds(), "backup_s")
		b.ReportMetric(float64(fi.Size())/(1<<20)/took.Seconds(), "MiB/s")
		b.ReportMetric(float64(during)/took.Seconds(), "writes_acked/s_meanwhile")
		b.ReportMetric(quietRate, "writes_acked/s_without_backup")
		b.Logf("database %d MiB, backup %s, %d events acknowledged meanwhile; %s", fi.Size()>>20, took.Round(time.Millisecond), during, strings.TrimSpace(r.stdout))
	}
	b.StopTimer()
	w.stop()
}

// seedAuditBytes appends events with 4 KiB of metadata each until the file holds size bytes.
func seedAuditBytes(b *testing.B, e env, path string, size int64) {
	b.Helper()
	h := serviceDB(b, e, "audit")
	as := auditStoreOf(h)
	meta := `{"note":"` + strings.Repeat("x", 4000) + `"}`
	for round := 0; ; round++ {
		if fi, err := os.Stat(path); err != nil {
			b.Fatal(err)
		} else if fi.Size() >= size || round > 1<<20 {
			break
		}
		ps := make([]auditstore.Pending, 0, 1000)
		now := time.Now().UTC().Truncate(time.Microsecond)
		for j := range 1000 {
			ps = append(ps, auditstore.Pending{Event: &auditstore.Event{ID: uuid.NewString(), OccurTime: now, RecordTime: now,
				Actor: "agent-1", Action: "crm.deal.update", Resource: fmt.Sprint("Deals/", j), Outcome: 1, Metadata: meta, Principal: "apikey:bench"}})
		}
		if _, err := as.Append(context.Background(), ps); err != nil {
			b.Fatal(err)
		}
		if _, err := h.SQLite.Write.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil && round%50 == 0 {
			b.Log(err)
		}
	}
	h.Close()
}
