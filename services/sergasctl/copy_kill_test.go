package sergasctl_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/proctest"
	auditstore "github.com/sergas/core/services/audit/store"
)

// TestCopyKilledMidwayLeavesTheSourceAndReruns kills sergasctl copy (kill -9) once the staging schema is
// being filled: the source's chain is untouched, the target schema was never made, and a second run
// copies everything and verifies.
func TestCopyKilledMidwayLeavesTheSourceAndReruns(t *testing.T) {
	url := dbtest.PostgresURL(t)
	e := withSchemas(t, newEnv(t, db.SQLite), url)
	mustRun(t, e, 0, "setup", "--service", "audit")
	ctx := context.Background()
	as := auditStoreOf(serviceDB(t, e, "audit"))
	const events = 30000
	for range events / 1000 {
		ps := make([]auditstore.Pending, 0, 1000)
		for range 1000 {
			now := time.Now().UTC().Truncate(time.Microsecond)
			ps = append(ps, auditstore.Pending{Event: &auditstore.Event{ID: uuid.NewString(), OccurTime: now, RecordTime: now,
				Actor: "agent-1", Action: "crm.deal.update", Resource: "Deals/1", Outcome: 1, Metadata: `{"k":"v"}`, Principal: "apikey:test"}})
		}
		if _, err := as.Append(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	before, err := as.ChainState(ctx)
	if err != nil {
		t.Fatal(err)
	}

	schema := e["AUDIT_DATABASE_SCHEMA"]
	cmd := exec.Command(proctest.Binary(t, "github.com/sergas/core/services/sergasctl/cmd/sergasctl"), "copy", "--to", url, "--service", "audit")
	for k, v := range e {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pc, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	// Wait until the staging events table exists (the migrations ran; the rows are going in), bounded.
	deadline := time.Now().Add(time.Minute)
	for {
		var reg *string
		if err := pc.QueryRow(ctx, "SELECT to_regclass($1)::text", schema+"_copying.events").Scan(&reg); err != nil {
			t.Fatal(err)
		}
		if reg != nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("copy ended before it could be killed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the staging schema never appeared")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done

	if schemaExists(t, url, schema) {
		t.Fatal("a killed copy left the target schema in place")
	}
	as = auditStoreOf(serviceDB(t, e, "audit"))
	after, err := as.ChainState(ctx)
	if err != nil || after.HeadSeq != before.HeadSeq || string(after.HeadHash) != string(before.HeadHash) {
		t.Fatalf("the source changed: %+v -> %+v (%v)", before, after, err)
	}
	if v, err := auditstore.Verify(ctx, as, auditstore.VerifyParams{}); err != nil || !v.Valid {
		t.Fatalf("the source's chain after the kill: %+v %v", v, err)
	}

	var doc copyDoc
	mustRun(t, e, 0, "copy", "--to", url, "--service", "audit", "--json").decode(t, &doc)
	if s := doc.Services[0]; s.AuditHead == nil || s.AuditHead.Sequence != events || s.Rows != events+1 {
		t.Fatalf("the second run: %+v", s)
	}
	if schemaExists(t, url, schema+"_copying") {
		t.Fatal("the staging schema is left after a successful copy")
	}
}
