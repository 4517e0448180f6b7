package sergasctl_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	auditstore "github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/token"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

// copyDoc is copy's --json output.
type copyDoc struct {
	Services []struct {
		Service, Source, Target, Error string
		DryRun                         bool             `json:"dry_run"`
		SourceRows                     map[string]int64 `json:"source_rows"`
		TargetHasData                  bool             `json:"target_has_data"`
		Tables                         []struct {
			Table  string
			Rows   int64
			SHA256 string
		}
		Rows      int64
		AuditHead *struct {
			Sequence int64
			Hash     string
		} `json:"audit_head"`
		KeptAside string `json:"kept_aside"`
	}
	OK       bool
	ExitCode int `json:"exit_code"`
}

// populate fills a set-up installation: two token connections (sealed by the service), an audit chain
// of 7 events with a checkpoint, and a webhook subscription with one delivery in every status and an
// attempt history. It returns the audit head.
func populate(t *testing.T, e env, d db.Dialect) auditstore.ChainState {
	t.Helper()
	ctx := context.Background()
	svc, err := token.Open(ctx, token.LoadConfig(config.FromMap(e)), quietLog, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"crm-1", "crm-2"} {
		if _, err := svc.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: id,
			AccessToken: "access-" + id, RefreshToken: "refresh-" + id, ExpiresIn: durationpb.New(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	svc.Close()

	as := auditStoreOf(serviceDB(t, e, "audit"))
	appendEvents := func(n int) {
		t.Helper()
		if _, err := as.Append(ctx, pendingEvents(n)); err != nil {
			t.Fatal(err)
		}
	}
	appendEvents(4)
	pub, priv, _ := ed25519.GenerateKey(nil)
	if _, err := as.CheckpointAppend(ctx, func(st auditstore.ChainState) (*auditstore.Checkpoint, error) {
		return &auditstore.Checkpoint{Sequence: st.HeadSeq, Hash: st.HeadHash, Time: time.Now().UTC().Truncate(time.Microsecond), Kind: 1,
			AnchorSeq: st.AnchorSeq, AnchorHash: st.AnchorHash, KeyID: "00000000000000ff", PublicKey: pub, SignedText: "fixture",
			Signature: ed25519.Sign(priv, []byte("fixture"))}, nil
	}); err != nil {
		t.Fatal(err)
	}
	appendEvents(3)
	head, err := as.ChainState(ctx)
	if err != nil {
		t.Fatal(err)
	}

	wh := serviceDB(t, e, "webhook")
	ws := webhookStoreOf(wh)
	now := time.Now().UTC().Truncate(time.Microsecond)
	sub := &webhookstore.Subscription{ID: uuid.Must(uuid.NewV7()).String(), Name: "crm-sync",
		Filter:        webhookstore.Filter{Sources: []string{"zoho"}},
		Retry:         webhookstore.RetryPolicy{MaxRetries: 5, BackoffBase: time.Second, BackoffCap: time.Minute},
		LeaseDuration: 30 * time.Second, State: webhookstore.SubscriptionActive, CreateTime: now, UpdateTime: now, Mode: webhookstore.SubscriptionPull}
	if err := ws.SubscriptionCreate(ctx, sub); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := ws.EventInsert(ctx, &webhookstore.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: fmt.Sprint("k", i),
			Status: webhookstore.StatusPending, ContentType: "application/json", Payload: []byte(fmt.Sprintf(`{"n": %d}`, i)),
			Headers: []webhookstore.Header{{Name: "X-Trace", Values: []string{"t"}}}, ReceiveTime: now}); err != nil {
			t.Fatal(err)
		}
	}
	var at any = now.UnixMicro()
	if d == db.Postgres {
		at = now
	}
	// One delivery in each status (ids follow insertion: 1 pending … 5 dead letter), with attempts.
	execSQL(t, wh, "UPDATE deliveries SET status = 2, lease = 1, consumer = 'agent-a', lease_start_time = available_time WHERE id = 2")
	execSQL(t, wh, "UPDATE deliveries SET status = 3, available_time = NULL, attempt_count = 1, lease = 1 WHERE id = 3")
	execSQL(t, wh, "UPDATE deliveries SET status = 4, attempt_count = 1, lease = 1, last_error = 'nacked: busy' WHERE id = 4")
	execSQL(t, wh, "UPDATE deliveries SET status = 5, available_time = NULL, attempt_count = 6, lease = 6, last_error = 'gave up' WHERE id = 5")
	for _, id := range []int{3, 4, 5} {
		execSQL(t, wh, "INSERT INTO delivery_attempts (delivery_id, number, start_time, duration_us, outcome, error, consumer) VALUES ($1, 1, $2, 1500, $3, '', 'agent-a')",
			id, at, map[int]string{3: "acked", 4: "nacked", 5: "lease_expired"}[id])
	}
	return head
}

// pendingEvents are n audit events to append.
func pendingEvents(n int) []auditstore.Pending {
	var ps []auditstore.Pending
	for i := range n {
		now := time.Now().UTC().Truncate(time.Microsecond)
		ps = append(ps, auditstore.Pending{Event: &auditstore.Event{ID: uuid.NewString(), OccurTime: now, RecordTime: now,
			Actor: "agent-1", Action: "crm.deal.update", Resource: fmt.Sprintf("Deals/%d", i), Outcome: 1,
			Metadata: `{"b": 1, "a": "ü"}`, Principal: "apikey:test"}})
	}
	return ps
}

// withSchemas gives each service a fresh PostgreSQL schema name, and drops what copy makes beside them.
func withSchemas(t *testing.T, e env, url string) env {
	t.Helper()
	for _, s := range []string{"TOKEN", "AUDIT", "WEBHOOK"} {
		schema := dbtest.NewSchema(t, url)
		e = e.with(s+"_DATABASE_SCHEMA", schema)
		t.Cleanup(func() { dropSchemasLike(t, url, schema+"_%") })
	}
	return e
}

func dropSchemasLike(t testing.TB, url, pattern string) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Log(err)
		return
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", pattern)
	if err != nil {
		t.Log(err)
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		_, _ = c.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{n}.Sanitize()+" CASCADE")
	}
}

// accessToken asks the token service, opened on e's databases, for a connection's access token.
func accessToken(t *testing.T, e env, id string) string {
	t.Helper()
	ctx := context.Background()
	svc, err := token.Open(ctx, token.LoadConfig(config.FromMap(e)), quietLog, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	resp, err := svc.GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetAccessToken()
}

// deliveryStates lists every delivery as "id status attempts lease consumer error".
func deliveryStates(t *testing.T, e env) []string {
	t.Helper()
	h := serviceDB(t, e, "webhook")
	q := h.SQL()
	if h.Postgres != nil {
		defer q.Close()
	}
	rows, err := q.QueryContext(context.Background(), `SELECT d.id, d.status, d.attempt_count, d.lease, d.consumer, d.last_error,
		(SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) FROM deliveries d ORDER BY d.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, status, attempts, lease, n int64
		var consumer, lastErr string
		if err := rows.Scan(&id, &status, &attempts, &lease, &consumer, &lastErr, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %d %d %d %s %q %d", id, status, attempts, lease, consumer, lastErr, n))
	}
	return out
}

// TestCopyToPostgresAndBack copies a populated SQLite installation to PostgreSQL and back to SQLite: each
// copy validates, the services on the copy serve the same token, audit head and deliveries, a target with
// data is refused without --force and kept aside with it, and --dry-run writes nothing.
func TestCopyToPostgresAndBack(t *testing.T) {
	url := dbtest.PostgresURL(t)
	// The fixture checkpoint is signed by a key of its own, named as a rotated-away one.
	e := withSchemas(t, newEnv(t, db.SQLite), url).with("AUDIT_PREVIOUS_SIGNING_KEY_IDS", "00000000000000ff")
	mustRun(t, e, 0, "setup")
	head := populate(t, e, db.SQLite)
	wantDeliveries := deliveryStates(t, e)
	pgEnv := e.with("DATABASE_URL", url)

	var dry copyDoc
	mustRun(t, e, 0, "copy", "--to", url, "--dry-run", "--json").decode(t, &dry)
	if len(dry.Services) != 3 || dry.Services[1].SourceRows["events"] != 7 || dry.Services[2].SourceRows["deliveries"] != 5 {
		t.Fatalf("dry run: %+v", dry)
	}
	if schemaExists(t, url, e["AUDIT_DATABASE_SCHEMA"]) {
		t.Fatal("--dry-run made the target schema")
	}

	var doc copyDoc
	r := mustRun(t, e, 0, "copy", "--to", url, "--json")
	r.decode(t, &doc)
	aud := doc.Services[1]
	if aud.AuditHead == nil || aud.AuditHead.Sequence != head.HeadSeq || aud.Rows != 7+1+1 {
		t.Fatalf("audit copy: %+v", aud)
	}
	var vdoc checkDoc
	mustRun(t, pgEnv, 0, "validate", "--json").decode(t, &vdoc)
	if f := vdoc.failed(); len(f) > 0 {
		t.Fatalf("validate on the copy: %v", f)
	}
	if got := accessToken(t, pgEnv, "crm-2"); got != "access-crm-2" {
		t.Fatalf("the token service on the copy hands out %q", got)
	}
	if got := deliveryStates(t, pgEnv); strings.Join(got, "\n") != strings.Join(wantDeliveries, "\n") {
		t.Fatalf("deliveries on the copy:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantDeliveries, "\n"))
	}
	pgHead, err := auditStoreOf(serviceDB(t, pgEnv, "audit")).ChainState(context.Background())
	if err != nil || pgHead.HeadSeq != head.HeadSeq || string(pgHead.HeadHash) != string(head.HeadHash) {
		t.Fatalf("audit head on the copy: %+v %v", pgHead, err)
	}
	// The next ids on the copy continue after the source's: a new event gets seq 6.
	ws := webhookStoreOf(serviceDB(t, pgEnv, "webhook"))
	ev, _, err := ws.EventInsert(context.Background(), &webhookstore.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: "k-new",
		Status: webhookstore.StatusPending, ContentType: "application/json", Payload: []byte(`{}`), ReceiveTime: time.Now().UTC()})
	if err != nil || ev.Seq != 6 {
		t.Fatalf("a new event on the copy: %+v %v", ev, err)
	}

	// Again: the target holds data now.
	r = mustRun(t, e, 1, "copy", "--to", url, "--service", "token")
	if !strings.Contains(r.stdout, "holds data") || !strings.Contains(r.stdout, "--force") {
		t.Fatalf("copy over data: %s", r.stdout)
	}
	doc = copyDoc{}
	mustRun(t, e, 0, "copy", "--to", url, "--service", "token", "--force", "--json").decode(t, &doc)
	if kept := doc.Services[0].KeptAside; kept == "" || !schemaExists(t, url, kept) {
		t.Fatalf("--force kept the old target as %q", kept)
	}

	// And back: PostgreSQL → SQLite files in a new directory.
	back := filepath.Join(t.TempDir(), "sergas.db")
	doc = copyDoc{}
	mustRun(t, pgEnv, 0, "copy", "--to", "sqlite://"+back, "--json").decode(t, &doc)
	sqliteEnv := e.with("DATABASE_URL", "sqlite://"+back)
	vdoc = checkDoc{}
	mustRun(t, sqliteEnv, 0, "validate", "--json").decode(t, &vdoc)
	if f := vdoc.failed(); len(f) > 0 {
		t.Fatalf("validate on the copy back: %v", f)
	}
	if got := accessToken(t, sqliteEnv, "crm-1"); got != "access-crm-1" {
		t.Fatalf("the token service on the copy back hands out %q", got)
	}
	for i, s := range doc.Services {
		if s.Error != "" || len(s.Tables) == 0 {
			t.Fatalf("copy back %d: %+v", i, s)
		}
	}
}
