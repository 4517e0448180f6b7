package token_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/auditclient"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/store/postgres"
	"github.com/sergas/core/services/token/store/sqlite"
	"github.com/sergas/core/services/token/zohotest"
)

// openStore opens the token store directly, as a second process would.
func openStore(t *testing.T, dbc db.Config) store.Store {
	t.Helper()
	h, err := db.Open(context.Background(), dbc, "token", true)
	if err != nil {
		t.Fatal(err)
	}
	var st store.Store
	if h.SQLite != nil {
		st = sqlite.New(h.SQLite)
	} else {
		st = postgres.New(h.Postgres)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// A replica that died holding the lease (mid-refresh) leaves the stored token intact; once its lease
// expires, the next caller refreshes and gets a usable token.
func TestRestartMidRefreshLeavesAUsableToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		createExpired(t, r.client, "org-1", z.IssueRefreshToken())
		st := openStore(t, dbc)
		now := time.Now()
		until := now.Add(1500 * time.Millisecond)
		if _, ok, err := st.LeaseAcquire(context.Background(), store.LeaseParams{Key: store.Key{Provider: "zoho", ConnectionID: "org-1"},
			Owner: "crashed-replica", Now: now, Until: until}); !ok || err != nil {
			t.Fatalf("dead replica's lease: %v %v", ok, err)
		}
		got, err := get(r.client, "org-1")
		if err != nil || !z.Valid(got.GetAccessToken()) {
			t.Fatalf("after the dead lease: %v %v", got, err)
		}
		// The precondition: the lease was really held, so the provider was asked only after it expired.
		times := z.RefreshTimes()
		if len(times) != 1 {
			t.Fatalf("%d refreshes", len(times))
		}
		if times[0].Before(until) {
			t.Fatalf("refreshed at %v, while another replica's lease was live until %v", times[0], until)
		}
	})
}

func TestKeyringErrorsAreClearAndRotationWorks(t *testing.T) {
	dbc := dbtest.Config(t, db.SQLite)
	z := zohotest.New(t)
	r := startReplica(t, config_(t, dbc, z, nil))
	secretRT := z.IssueRefreshToken()
	create(t, r.client, "org-1", secretRT, time.Hour)
	r.stop()

	// The database file alone reveals no token.
	for _, f := range []string{dbc.SQLitePath, dbc.SQLitePath + "-wal"} {
		raw, _ := os.ReadFile(f)
		if bytes.Contains(raw, []byte(secretRT)) || bytes.Contains(raw, []byte("1000.at.initial-org-1")) {
			t.Fatalf("%s holds a plaintext token", f)
		}
	}
	open := func(keys string) error {
		svc, err := token.Open(context.Background(), config_(t, dbc, z, map[string]string{"TOKEN_ENCRYPTION_KEYS": keys}), quiet(), nil)
		if err == nil {
			svc.Close()
		}
		return err
	}
	k2 := "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	if err := open(k2); err == nil || !strings.Contains(err.Error(), `lacks key "k1"`) {
		t.Fatalf("missing key: %v", err)
	}
	if err := open("k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="); err == nil || !strings.Contains(err.Error(), "wrong key material") {
		t.Fatalf("wrong key material: %v", err)
	}
	env := config.FromMap(map[string]string{"SERGAS_ENV": "production"})
	token.LoadConfig(env)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "TOKEN_ENCRYPTION_KEYS is required outside development mode") {
		t.Fatalf("no key in production: %v", err)
	}

	// Rotation: k2 seals, k1 still opens; reseal moves every row to k2, then k1 can go.
	rotated := config_(t, dbc, z, map[string]string{"TOKEN_ENCRYPTION_KEYS": k2 + "," + keysK1})
	r2 := startReplica(t, rotated)
	n, err := token.Reseal(context.Background(), rotated, quiet())
	if err != nil || n != 1 {
		t.Fatalf("reseal: %d %v", n, err)
	}
	if got, err := get(r2.client, "org-1"); err != nil || got.GetAccessToken() != "1000.at.initial-org-1" {
		t.Fatalf("after reseal: %v %v", got, err)
	}
	r2.stop()
	r3 := startReplica(t, config_(t, dbc, z, map[string]string{"TOKEN_ENCRYPTION_KEYS": k2}))
	if _, err := r3.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
		t.Fatalf("refresh with the old key retired: %v", err)
	}
}

func TestPersistenceDisabledKeepsNothingOnDisk(t *testing.T) {
	dir := t.TempDir()
	z := zohotest.New(t)
	cfg := config_(t, db.Config{Dialect: db.SQLite, SQLitePath: dir + "/token.db", SQLiteBusyTimeout: time.Second, SQLiteReadConns: 2}, z,
		map[string]string{"TOKEN_PERSISTENCE_ENABLED": "false"})
	r := startReplica(t, cfg)
	create(t, r.client, "org-1", z.IssueRefreshToken(), time.Minute)
	if got, err := get(r.client, "org-1"); err != nil || !z.Valid(got.GetAccessToken()) {
		t.Fatalf("in memory: %v %v", got, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files written with persistence off: %v", entries)
	}
}

func TestBackgroundRefresherRefreshesUnasked(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		cfg := config_(t, dbc, z, map[string]string{"TOKEN_REFRESHER_INTERVAL": "200ms"})
		r1 := startReplica(t, cfg)
		r := startReplica(t, cfg) // two replicas: still one refresh
		create(t, r.client, "org-1", z.IssueRefreshToken(), 2*time.Minute)
		create(t, r.client, "fresh", z.IssueRefreshToken(), time.Hour)
		waitFor(t, 10*time.Second, "a background refresh", func() bool { return z.Refreshes() > 0 })
		// Two more complete rounds on each replica (a round ends when its refreshes have): nothing else
		// is due, so nothing else reaches the provider.
		n1, n := r1.svc.RefresherRounds(), r.svc.RefresherRounds()
		waitFor(t, 10*time.Second, "two more refresher rounds on each replica", func() bool {
			return r1.svc.RefresherRounds() >= n1+2 && r.svc.RefresherRounds() >= n+2
		})
		if z.Refreshes() != 1 {
			t.Fatalf("background refreshes: %d, want 1", z.Refreshes())
		}
		c, _ := r.client.GetConnection(context.Background(), &tokenv1.GetConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
		if c.GetConnection().GetLastRefreshOutcome() != tokenv1.RefreshOutcome_REFRESH_OUTCOME_SUCCESS {
			t.Fatalf("after background refresh: %v", c)
		}
	})
}

func TestExchangeAndRevoke(t *testing.T) {
	z := zohotest.New(t)
	r := startReplica(t, config_(t, dbtest.Config(t, db.SQLite), z, nil))
	ctx := context.Background()
	ex, err := r.client.ExchangeCode(ctx, &tokenv1.ExchangeCodeRequest{Provider: "zoho", ConnectionId: "org-9", Code: z.IssueCode(),
		RedirectUri: "https://app.example/callback"})
	if err != nil || !ex.GetConnection().GetHasRefreshToken() || ex.GetConnection().GetApiDomain() != "https://www.zohoapis.eu" {
		t.Fatalf("exchange: %v %v", ex, err)
	}
	if _, err := r.client.ExchangeCode(ctx, &tokenv1.ExchangeCodeRequest{Provider: "zoho", ConnectionId: "x", Code: "1000.code.used"}); err == nil {
		t.Fatal("unknown code accepted")
	}
	if _, err := r.client.RevokeConnection(ctx, &tokenv1.RevokeConnectionRequest{Provider: "zoho", ConnectionId: "org-9"}); err != nil {
		t.Fatal(err)
	}
	if len(z.Revoked()) != 1 {
		t.Fatal("the provider did not see the revocation")
	}
	if _, err := get(r.client, "org-9"); err == nil {
		t.Fatal("revoked connection still serves tokens")
	}
	ev, _ := r.client.ListRefreshEvents(ctx, &tokenv1.ListRefreshEventsRequest{Provider: "zoho", ConnectionId: "org-9"})
	if len(ev.GetEvents()) != 1 || ev.GetEvents()[0].GetOutcome() != tokenv1.RefreshOutcome_REFRESH_OUTCOME_REVOKED {
		t.Fatalf("history after revoke: %v", ev)
	}
}

// With the audit service down, refreshes go on; their audit events wait in the outbox and reach the
// audit log once it is back, each exactly once.
func TestAuditEventsWaitForTheAuditService(t *testing.T) {
	z := zohotest.New(t)
	ctx := context.Background()
	dbc := dbtest.Config(t, db.SQLite)
	auditAddr := freeAddr(t)
	client := auditclient.NewClient("")
	if err := client.Connect(auditAddr, insecure.NewCredentials()); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rec := &watchedRecorder{AuditRecorder: client}
	svc, err := token.Open(ctx, config_(t, dbc, z, nil), quiet(), rec)
	if err != nil {
		t.Fatal(err)
	}
	r := startReplicaFor(t, svc) // stops the workers, then closes svc, at cleanup
	create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
	for range 3 {
		if _, err := r.client.RefreshConnection(ctx, &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
			t.Fatalf("refresh with the audit service down: %v", err)
		}
	}
	// The precondition: a delivery round really failed while the audit service was down.
	waitFor(t, 10*time.Second, "a failed delivery", func() bool { return rec.failures.Load() > 0 })

	// Now the audit service comes up at the address the token service was given.
	auditClient := startAudit(t, auditAddr)
	st := openStore(t, dbc)
	waitFor(t, 45*time.Second, "the outbox delivered and empty", func() bool {
		left, err := st.OutboxList(ctx, 10)
		return err == nil && len(left) == 0
	})
	// The outbox is empty, so nothing more can arrive: the audit log is final.
	list, err := auditClient.ListEvents(ctx, &auditv1.ListEventsRequest{Resource: "zoho/org-1", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	refreshes := 0
	for _, e := range list.GetEvents() {
		if e.GetAction() == "token.refresh" {
			refreshes++
		}
		if e.GetSourceService() != "sergas-token" {
			t.Fatalf("event %s has source_service %q, want sergas-token", e.GetAction(), e.GetSourceService())
		}
	}
	if len(list.GetEvents()) != 4 || refreshes != 3 {
		t.Fatalf("audit log holds %d events (%d refreshes), want 4 (3)", len(list.GetEvents()), refreshes)
	}
}

// watchedRecorder counts failed deliveries, so a test can wait for one.
type watchedRecorder struct {
	token.AuditRecorder
	failures atomic.Int32
}

func (w *watchedRecorder) Record(ctx context.Context, req *auditv1.RecordEventRequest) error {
	err := w.AuditRecorder.Record(ctx, req)
	if err != nil {
		w.failures.Add(1)
	}
	return err
}

// A connection without a refresh token, or a provider without client credentials, never reaches the
// provider and is never marked for re-authorisation: the stored token is served while it lasts.
func TestNothingToRefreshWith(t *testing.T) {
	z := zohotest.New(t)
	dbc := dbtest.Config(t, db.SQLite)
	r := startReplica(t, config_(t, dbc, z, nil))
	if _, err := r.client.CreateConnection(context.Background(), &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "no-rt",
		AccessToken: "1000.at.only", ExpiresIn: durationpb.New(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(r.client, "no-rt"); err != nil || got.GetAccessToken() != "1000.at.only" {
		t.Fatalf("no refresh token: %v %v", got, err)
	}
	r.stop()
	noClient := startReplica(t, config_(t, dbc, z, map[string]string{"TOKEN_PROVIDER_ZOHO_CLIENT_ID": "", "TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": ""}))
	create(t, noClient.client, "org-1", z.IssueRefreshToken(), time.Minute)
	if got, err := get(noClient.client, "org-1"); err != nil || got.GetAccessToken() != "1000.at.initial-org-1" {
		t.Fatalf("no client credentials: %v %v", got, err)
	}
	_, err := noClient.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "TOKEN_PROVIDER_ZOHO_CLIENT_ID") {
		t.Fatalf("forced refresh without client credentials: %v", err)
	}
	if z.Refreshes() != 0 {
		t.Fatalf("%d provider calls", z.Refreshes())
	}
}

// After a key rotation, a refresh re-seals every column of the row under the new key, so re-sealing
// has nothing left to do and the old key can be removed.
func TestRefreshAfterKeyRotationSealsTheWholeRow(t *testing.T) {
	dbc := dbtest.Config(t, db.SQLite)
	z := zohotest.New(t)
	r := startReplica(t, config_(t, dbc, z, nil))
	if _, err := r.client.CreateConnection(context.Background(), &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "org-1",
		AccessToken: "1000.at.x", RefreshToken: z.IssueRefreshToken(), ExpiresIn: durationpb.New(time.Hour),
		ClientId: z.ClientID, ClientSecret: z.ClientSecret}); err != nil {
		t.Fatal(err)
	}
	r.stop()
	k2 := "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	both := config_(t, dbc, z, map[string]string{"TOKEN_ENCRYPTION_KEYS": k2 + "," + keysK1})
	r2 := startReplica(t, both)
	if _, err := r2.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
		t.Fatal(err)
	}
	r2.stop()
	if n, err := token.Reseal(context.Background(), both, quiet()); err != nil || n != 0 {
		t.Fatalf("reseal after refresh: %d %v (the refresh should have re-sealed the row)", n, err)
	}
	r3 := startReplica(t, config_(t, dbc, z, map[string]string{"TOKEN_ENCRYPTION_KEYS": k2}))
	if _, err := r3.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
		t.Fatalf("refresh with only the new key: %v", err)
	}
}

// Stopping a replica while its background refresher is mid-call waits for the result to be stored: a
// rotated refresh token exists nowhere else.
func TestCloseWaitsForRefreshInProgress(t *testing.T) {
	dbc := dbtest.Config(t, db.SQLite)
	z := zohotest.New(t)
	z.Rotate, z.Delay = true, time.Second
	cfg := config_(t, dbc, z, map[string]string{"TOKEN_REFRESHER_INTERVAL": "100ms"})
	r := startReplica(t, cfg)
	create(t, r.client, "org-1", z.IssueRefreshToken(), 2*time.Minute)
	select { // the precondition: the background refresher is now waiting on the slow provider
	case <-z.Arrived():
	case <-time.After(10 * time.Second):
		t.Fatal("the background refresher never called the provider")
	}
	r.stop()
	if z.Refreshes() != 1 {
		t.Fatalf("%d refreshes reached the provider before close returned", z.Refreshes())
	}
	z.Delay = 0
	r2 := startReplica(t, config_(t, dbc, z, nil))
	if _, err := r2.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
		t.Fatalf("the rotated refresh token was lost at close: %v", err)
	}
}

// Taking over a dead replica's lease late still leaves the whole lease for the provider call and for
// storing its outcome.
func TestLateTakeoverStillStoresTheRotatedToken(t *testing.T) {
	dbc := dbtest.Config(t, db.SQLite)
	z := zohotest.New(t)
	z.Rotate, z.Delay = true, 1500*time.Millisecond
	r := startReplica(t, config_(t, dbc, z, map[string]string{"TOKEN_REFRESH_LEASE": "3s", "TOKEN_PROVIDER_TIMEOUT": "2s"}))
	createExpired(t, r.client, "org-1", z.IssueRefreshToken())
	st := openStore(t, dbc)
	now := time.Now()
	until := now.Add(2500 * time.Millisecond)
	if _, ok, _ := st.LeaseAcquire(context.Background(), store.LeaseParams{Key: store.Key{Provider: "zoho", ConnectionID: "org-1"},
		Owner: "crashed", Now: now, Until: until}); !ok {
		t.Fatal("no lease for the crashed replica")
	}
	if got, err := get(r.client, "org-1"); err != nil || !z.Valid(got.GetAccessToken()) {
		t.Fatalf("after a late takeover: %v %v", got, err)
	}
	// The precondition: the takeover really came late, after the crashed replica's lease.
	if times := z.RefreshTimes(); len(times) != 1 || times[0].Before(until) {
		t.Fatalf("provider asked at %v, want once after %v", times, until)
	}
	z.Delay = 0
	if _, err := r.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
		t.Fatalf("the rotated refresh token was not stored: %v", err)
	}
}
