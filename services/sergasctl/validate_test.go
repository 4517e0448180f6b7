package sergasctl_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/keyring"
	auditstore "github.com/sergas/core/services/audit/store"
	auditpg "github.com/sergas/core/services/audit/store/postgres"
	auditsqlite "github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
	webhookstore "github.com/sergas/core/services/webhook/store"
	webhookpg "github.com/sergas/core/services/webhook/store/postgres"
	webhooksqlite "github.com/sergas/core/services/webhook/store/sqlite"
)

func TestValidatePassesAfterSetupAndLeavesNothing(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup")
		var doc checkDoc
		r := run(t, e, "", "validate", "--json")
		r.decode(t, &doc)
		if r.code != 0 || !doc.OK || doc.ExitCode != 0 {
			t.Fatalf("validate after setup: exit %d, failed: %v", r.code, doc.failed())
		}
		checks := []string{"configuration", "connect", "schema", "indexes", "keys", "round trip", "pool"}
		if d == db.SQLite {
			checks = append(checks[:len(checks)-1:len(checks)-1], "pragmas", "permissions") // no pool on SQLite
		}
		for _, s := range []string{"token", "audit", "webhook"} {
			for _, c := range checks {
				if status, detail, _ := doc.find(t, s, c); status != "ok" {
					t.Errorf("%s %s: %s %s", s, c, status, detail)
				}
			}
		}
		if d == db.SQLite {
			if _, detail, _ := doc.find(t, "webhook", "pragmas"); !strings.Contains(detail, "journal_mode=wal") {
				t.Errorf("pragmas: %s", detail)
			}
		}
		// The round trip and the reference schema left nothing behind.
		for _, s := range []string{"token", "audit", "webhook"} {
			h := serviceDB(t, e, s)
			var n int
			var err error
			if h.SQLite != nil {
				err = h.SQLite.Read.QueryRow("SELECT count(*) FROM sqlite_master WHERE name LIKE 'sergasctl%'").Scan(&n)
			} else {
				err = h.Postgres.Pool.QueryRow(context.Background(),
					"SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'sergasctl%') + (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'sergasctl%')").Scan(&n)
			}
			if err != nil || n != 0 {
				t.Errorf("%s: %d sergasctl object(s) left (%v)", s, n, err)
			}
		}
		// Text output: one line per check and a summary.
		r = mustRun(t, e, 0, "validate", "--service", "audit")
		if !strings.Contains(r.stdout, "audit    ok    round trip") || !strings.Contains(r.stdout, "validate: ") {
			t.Errorf("text output:\n%s", r.stdout)
		}
	})
}

func TestValidateNamesAMissingIndex(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup", "--service", "webhook")
		execSQL(t, serviceDB(t, e, "webhook"), "DROP INDEX events_receive_time")
		var doc checkDoc
		mustRun(t, e, 1, "validate", "--service", "webhook", "--json").decode(t, &doc)
		status, detail, fix := doc.find(t, "webhook", "indexes")
		if status != "fail" || !strings.Contains(detail, "missing index events_receive_time") || !strings.Contains(fix, "migrations/webhook/"+string(d)) {
			t.Fatalf("indexes check: %s %q fix %q", status, detail, fix)
		}
		if len(doc.failed()) != 1 {
			t.Errorf("only the index check should fail: %v", doc.failed())
		}
		// An index an operator added is reported, not failed.
		e2 := newEnv(t, d)
		mustRun(t, e2, 0, "setup", "--service", "token")
		execSQL(t, serviceDB(t, e2, "token"), "CREATE INDEX operators_own ON connections (update_time)")
		var doc2 checkDoc
		mustRun(t, e2, 0, "validate", "--service", "token", "--json").decode(t, &doc2)
		if status, detail, _ := doc2.find(t, "token", "indexes"); status != "ok" || !strings.Contains(detail, "index operators_own") {
			t.Errorf("an extra index: %s %q", status, detail)
		}
	})
}

// channelTokenAAD is how the webhook service binds a sealed channel token to its channel
// (services/webhook/channels.go): the fixture seals as the service does.
func channelTokenAAD(id string) []byte { return []byte("zoho-channel\x00" + id + "\x00token") }

func TestValidateOpensWhatIsSealed(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup")

		// A connection stored by the token service itself, sealed with the development key.
		tcfg := token.LoadConfig(config.FromMap(e))
		svc, err := token.Open(ctx, tcfg, quietLog, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "crm-1",
			AccessToken: "at-1", RefreshToken: "rt-1", ExpiresIn: durationpb.New(time.Hour)})
		svc.Close()
		if err != nil {
			t.Fatal(err)
		}
		// A channel whose token the webhook keyring sealed.
		wcfg := webhook.LoadConfig(config.FromMap(e))
		ring, err := webhook.LoadKeyring(wcfg)
		if err != nil {
			t.Fatal(err)
		}
		ws := webhookStoreOf(serviceDB(t, e, "webhook"))
		sealed, err := ring.Seal([]byte("zoho-channel-token"), channelTokenAAD("1234"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		if err := ws.ChannelCreate(ctx, &webhookstore.Channel{ID: "1234", Source: "zoho-crm", ConnectionID: "crm-1", Events: []string{"Deals.all"},
			NotifyURL: "https://hooks.example.com/webhooks/zoho-crm", SealedToken: sealed, State: webhookstore.ChannelActive,
			ExpireTime: now.Add(time.Hour), CreateTime: now, UpdateTime: now}); err != nil {
			t.Fatal(err)
		}
		var doc checkDoc
		mustRun(t, e, 0, "validate", "--json").decode(t, &doc)
		if status, detail, _ := doc.find(t, "token", "keys"); status != "ok" || !strings.Contains(detail, "dev: 1") {
			t.Errorf("token keys: %s %q", status, detail)
		}
		if status, detail, _ := doc.find(t, "webhook", "keys"); status != "ok" || !strings.Contains(detail, "all 1 channel token(s)") {
			t.Errorf("webhook keys: %s %q", status, detail)
		}

		// Another key under the same id: what is stored no longer opens.
		spec, err := keyring.NewKeySpec("dev")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e["DATA_DIR"], "dev-token-key"), []byte(spec+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		doc = checkDoc{}
		mustRun(t, e, 1, "validate", "--service", "token", "--json").decode(t, &doc)
		if status, detail, fix := doc.find(t, "token", "keys"); status != "fail" || !strings.Contains(detail, "zoho/crm-1 cannot be opened") || !strings.Contains(fix, "TOKEN_ENCRYPTION_KEYS") {
			t.Errorf("token keys with the wrong key: %s %q fix %q", status, detail, fix)
		}
		// A keyring without the id that sealed them.
		other, _ := keyring.NewKeySpec("new")
		doc = checkDoc{}
		mustRun(t, e.with("TOKEN_ENCRYPTION_KEYS", other).with("WEBHOOK_ENCRYPTION_KEYS", other), 1, "validate", "--json").decode(t, &doc)
		if status, detail, _ := doc.find(t, "token", "keys"); status != "fail" || !strings.Contains(detail, `1 connection(s) sealed with key "dev", which the keyring lacks`) {
			t.Errorf("token keys without the key id: %s %q", status, detail)
		}
		if status, detail, _ := doc.find(t, "webhook", "keys"); status != "fail" || !strings.Contains(detail, `key "dev" (1 sealed): channel 1234 token`) {
			t.Errorf("webhook keys without the key id: %s %q", status, detail)
		}

		// The newest audit checkpoint signed by a key that is neither current nor listed as previous.
		as := auditStoreOf(serviceDB(t, e, "audit"))
		if _, err := as.CheckpointAppend(ctx, func(st auditstore.ChainState) (*auditstore.Checkpoint, error) {
			return &auditstore.Checkpoint{Sequence: st.HeadSeq, Hash: st.HeadHash, Time: now, Kind: 1, AnchorSeq: st.AnchorSeq, AnchorHash: st.AnchorHash,
				KeyID: "00000000000000ff", PublicKey: make([]byte, 32), SignedText: "fixture", Signature: make([]byte, 64)}, nil
		}); err != nil {
			t.Fatal(err)
		}
		doc = checkDoc{}
		mustRun(t, e, 1, "validate", "--service", "audit", "--json").decode(t, &doc)
		if status, _, fix := doc.find(t, "audit", "keys"); status != "fail" || !strings.Contains(fix, "AUDIT_PREVIOUS_SIGNING_KEY_IDS") {
			t.Errorf("audit key: %s fix %q", status, fix)
		}
		mustRun(t, e.with("AUDIT_PREVIOUS_SIGNING_KEY_IDS", "00000000000000ff"), 0, "validate", "--service", "audit")
	})
}

func webhookStoreOf(h *db.Handle) webhookstore.Store {
	if h.SQLite != nil {
		return webhooksqlite.New(h.SQLite)
	}
	return webhookpg.New(h.Postgres)
}

func auditStoreOf(h *db.Handle) auditstore.Store {
	if h.SQLite != nil {
		return auditsqlite.New(h.SQLite)
	}
	return auditpg.New(h.Postgres)
}

// A write transaction held longer than SQLITE_BUSY_TIMEOUT fails the round trip by name, with the fix,
// rather than hanging or reporting a bare "database is locked".
func TestValidateRoundTripUnderAHeldLock(t *testing.T) {
	e := newEnv(t, db.SQLite).with("SQLITE_BUSY_TIMEOUT", "200ms")
	mustRun(t, e, 0, "setup", "--service", "token")
	h := serviceDB(t, e, "token")
	tx, err := h.SQLite.Write.Begin() // BEGIN IMMEDIATE: the write lock, held until the end of the test
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var doc checkDoc
	start := time.Now()
	mustRun(t, e, 1, "validate", "--service", "token", "--json").decode(t, &doc)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("validate took %s under a held lock", took)
	}
	status, detail, fix := doc.find(t, "token", "round trip")
	if status != "fail" || !strings.Contains(detail, "not free within SQLITE_BUSY_TIMEOUT (200ms)") || strings.Contains(detail, "database is locked") ||
		!strings.Contains(fix, "processes with the file open: none but sergasctl") {
		t.Errorf("round trip under a held lock: %s %q fix %q", status, detail, fix)
	}
	if status, _, fix := doc.find(t, "token", "pragmas"); status != "warn" || !strings.Contains(fix, "SQLITE_BUSY_TIMEOUT=5s") {
		t.Errorf("a busy timeout under a second: %s fix %q", status, fix)
	}
	// Reads do not wait for the writer.
	mustRun(t, e, 0, "health", "--service", "token")
}

// A push subscription made by the webhook service's own CreateSubscription: its signing secret opens
// with the keyring that sealed it and with no other.
func TestValidateOpensPushSecrets(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup", "--service", "webhook")
		wcfg := webhook.LoadConfig(config.FromMap(e))
		ring, err := webhook.LoadKeyring(wcfg)
		if err != nil {
			t.Fatal(err)
		}
		h := serviceDB(t, e, "webhook")
		srv := webhook.NewServer(webhookStoreOf(h), wcfg, webhook.WithKeyring(ring), webhook.WithLogger(quietLog))
		resp, err := srv.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "pusher", Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
			Push: &webhookv1.PushConfig{Endpoint: "http://127.0.0.1:9/hooks", AllowPrivateNetwork: true,
				SigningSecret: "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}})
		if err != nil {
			t.Fatal(err)
		}
		var doc checkDoc
		mustRun(t, e, 0, "validate", "--service", "webhook", "--json").decode(t, &doc)
		if status, detail, _ := doc.find(t, "webhook", "keys"); status != "ok" || !strings.Contains(detail, "1 push signing secret(s)") {
			t.Errorf("push secret: %s %q", status, detail)
		}
		other, _ := keyring.NewKeySpec("dev")
		doc = checkDoc{}
		mustRun(t, e.with("WEBHOOK_ENCRYPTION_KEYS", other), 1, "validate", "--service", "webhook", "--json").decode(t, &doc)
		if status, detail, _ := doc.find(t, "webhook", "keys"); status != "fail" || !strings.Contains(detail, "push subscription "+resp.GetSubscription().GetId()+" signing secret") {
			t.Errorf("push secret under another key: %s %q", status, detail)
		}
		// In production without WEBHOOK_ENCRYPTION_KEYS the service refuses to start; validate says why.
		doc = checkDoc{}
		prod := e.with("SERGAS_ENV", "production")
		mustRun(t, prod, 1, "validate", "--service", "webhook", "--json").decode(t, &doc)
		if status, detail, _ := doc.find(t, "webhook", "keys"); status != "fail" || !strings.Contains(detail, "1 push subscription(s) are stored sealed") {
			t.Errorf("no keyring: %s %q", status, detail)
		}
	})
}
