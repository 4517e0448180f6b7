package sergasctl_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/services/audit"
)

// While another process holds the write lock of a service's SQLite file longer than SQLITE_BUSY_TIMEOUT,
// SQLite answers "database is locked". No user sees those words: the running service answers
// UNAVAILABLE "database busy, retry" (with a retry delay), the sergasctl commands that need the lock
// fail naming the timeout and the processes with the file open, the holder among them, and those that
// only read succeed. Once the lock is released, the service writes again.
func TestDatabaseIsLockedNeverReachesAUser(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	signingKey := filepath.Join(dir, "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil {
		t.Fatal(err)
	}
	k := authtest.NewKey(t, "writer", "audit:write", "audit:read")
	proc := auditService.Start(t, map[string]string{"AUDIT_DATABASE_URL": "sqlite://" + path, "AUDIT_SIGNING_KEY": signingKey,
		"AUTH_API_KEYS": authtest.JSON(k), "SQLITE_BUSY_TIMEOUT": "1s"})
	client := auditv1.NewAuditServiceClient(proc.Conn(t))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+k.Key)
	record := func() error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err := client.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "agent-1", Action: "crm.deal.update", Resource: "Deals/1",
			Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
		return err
	}
	if err := record(); err != nil {
		t.Fatal(err)
	}

	holder := startHolder(t, "write", path)
	err := record()
	if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.HasPrefix(s.Message(), "database busy, retry") || strings.Contains(s.Message(), "locked") {
		t.Errorf("RecordEvent under another process's write lock: %v, want UNAVAILABLE \"database busy, retry\"", err)
	}

	e := env{"DATA_DIR": dir, "AUDIT_DATABASE_URL": "sqlite://" + path, "AUDIT_SIGNING_KEY": signingKey, "SQLITE_BUSY_TIMEOUT": "1s"}
	pid := fmt.Sprintf("pid %d (", holder.cmd.Process.Pid)
	for _, c := range []struct {
		args      []string
		needsLock bool
	}{
		{[]string{"maintain", "--service", "audit"}, true},
		{[]string{"validate", "--service", "audit"}, true},      // its round trip writes
		{[]string{"migrate", "up", "--service", "audit"}, true}, // each migration's transaction takes the lock, applied or not
		{[]string{"setup", "--service", "audit"}, true},
		{[]string{"backup", "--service", "audit", "--out", t.TempDir()}, false},
		{[]string{"health", "--service", "audit"}, false},
	} {
		r := run(t, e, "", c.args...)
		out, cmd := r.stdout+r.stderr, strings.Join(c.args, " ")
		switch {
		case strings.Contains(strings.ToLower(out), "database is locked"):
			t.Errorf("sergasctl %s shows SQLite's words (exit %d):\n%s", cmd, r.code, out)
		case !c.needsLock && r.code != 0:
			t.Errorf("sergasctl %s only reads, yet exit %d under a held write lock:\n%s", cmd, r.code, out)
		case c.needsLock && (r.code == 0 || !strings.Contains(out, "SQLITE_BUSY_TIMEOUT") || !strings.Contains(out, pid)):
			t.Errorf("sergasctl %s (exit %d) does not fail naming the busy timeout and the holder %s):\n%s", cmd, r.code, pid, out)
		}
	}

	holder.end()
	if err := record(); err != nil {
		t.Errorf("RecordEvent once the lock is released: %v", err)
	}
}
