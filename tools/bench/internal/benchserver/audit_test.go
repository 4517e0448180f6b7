package benchserver_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/tools/bench/internal/auditload"
	"github.com/sergas/core/tools/bench/internal/benchserver"
	"github.com/sergas/core/tools/bench/internal/noop"
)

// TestAuditNoopPaysForTheSameGuardAsRecordEvent: beside the audit service the no-op needs audit:write
// and spends the write class's budget that RecordEvent spends, so the audit benchmark's baseline pays
// the same guard; and the bench server redacts the benchmark's metadata as the service does.
func TestAuditNoopPaysForTheSameGuardAsRecordEvent(t *testing.T) {
	writer, _ := auth.NewAPIKey("bench")
	reader, _ := auth.NewAPIKey("reader")
	signingKey := filepath.Join(t.TempDir(), "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil {
		t.Fatal(err)
	}
	env := config.FromMap(map[string]string{
		"SERGAS_ENV": "production", "DATA_DIR": t.TempDir(), "AUDIT_SIGNING_KEY": signingKey, "TLS_DISABLED": "true", "AUDIT_GRPC_ADDR": "127.0.0.1:0",
		"AUTH_API_KEYS": fmt.Sprintf(`{"keys":[{"id":"bench","sha256":%q,"scopes":["audit:write","audit:read"]},{"id":"reader","sha256":%q,"scopes":["audit:read"]}]}`,
			auth.HashAPIKey(writer), auth.HashAPIKey(reader)),
		"RATE_LIMIT_PER_SECOND": "1", "RATE_LIMIT_BURST": "3",
	})
	ctx, conn := startBench(t, env, benchserver.RunAudit)
	as := func(key string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	ac := auditv1.NewAuditServiceClient(conn)

	if err := noop.Call(ctx, conn); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no-op without credentials: %v", err)
	}
	if err := noop.Call(as(reader), conn); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("no-op without audit:write: %v", err)
	}
	resp, err := ac.RecordEvent(as(writer), auditload.Request(1, 1, "k1"))
	if err != nil {
		t.Fatalf("RecordEvent within the budget: %v", err)
	}
	if !resp.GetEvent().GetRedacted() {
		t.Fatal("the benchmark's event was not redacted")
	}
	limited := false
	for range 20 { // bounded: the burst is 3, refilled at 1/s
		if err := noop.Call(as(writer), conn); status.Code(err) == codes.ResourceExhausted {
			limited = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !limited {
		t.Fatal("the no-op was never rate limited")
	}
	if _, err := ac.RecordEvent(as(writer), auditload.Request(1, 2, "k2")); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("RecordEvent after the no-op spent the write budget: %v", err)
	}
}
