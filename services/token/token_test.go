package token_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/token/zohotest"
)

const keysK1 = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// replica is one token service instance with a gRPC client.
type replica struct {
	svc    *token.Service
	client tokenv1.TokenServiceClient
	stop   func()
}

// config builds a token configuration pointing at the stand-in, on the given database.
func config_(t *testing.T, dbc db.Config, z *zohotest.Server, env map[string]string) token.Config {
	t.Helper()
	m := map[string]string{
		"TOKEN_ENCRYPTION_KEYS": keysK1, "TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": z.AccountsURL(),
		"TOKEN_PROVIDER_ZOHO_CLIENT_ID": z.ClientID, "TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": z.ClientSecret,
		"TOKEN_REFRESHER_INTERVAL": "0", "TOKEN_PROVIDER_TIMEOUT": "2s", "TOKEN_REFRESH_LEASE": "5s",
	}
	for k, v := range env {
		m[k] = v
	}
	e := config.FromMap(m)
	cfg := token.LoadConfig(e)
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	cfg.DB = dbc
	return cfg
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startReplica(t *testing.T, cfg token.Config) *replica {
	t.Helper()
	svc, err := token.Open(context.Background(), cfg, quiet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return startReplicaFor(t, svc)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startReplicaFor serves an opened service on loopback.
func startReplicaFor(t *testing.T, svc *token.Service) *replica {
	t.Helper()
	srv, err := grpcserver.New(grpcserver.Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, MaxConcurrentStreams: 1000, ShutdownTimeout: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx); close(done) }()
	stopWorkers := startWorkers(t, svc, quiet())
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	r := &replica{svc: svc, client: tokenv1.NewTokenServiceClient(conn)}
	r.stop = func() { once.Do(func() { conn.Close(); cancel(); <-done; stopWorkers(); svc.Close() }) }
	t.Cleanup(r.stop)
	return r
}

func forEachBackend(t *testing.T, fn func(t *testing.T, dbc db.Config)) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) { t.Parallel(); fn(t, dbtest.Config(t, d)) })
	}
}

func create(t *testing.T, c tokenv1.TokenServiceClient, id, rt string, expiresIn time.Duration) {
	t.Helper()
	_, err := c.CreateConnection(context.Background(), &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: id,
		AccessToken: "1000.at.initial-" + id, RefreshToken: rt, ExpiresIn: durationpb.New(expiresIn), ApiDomain: "https://www.zohoapis.eu"})
	if err != nil {
		t.Fatal(err)
	}
}

// createExpired stores a connection whose access token expired a minute ago: no need to wait for an
// expiry to pass.
func createExpired(t *testing.T, c tokenv1.TokenServiceClient, id, rt string) {
	t.Helper()
	_, err := c.CreateConnection(context.Background(), &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: id,
		AccessToken: "1000.at.initial-" + id, RefreshToken: rt, ExpireTime: timestamppb.New(time.Now().Add(-time.Minute)),
		ApiDomain: "https://www.zohoapis.eu"})
	if err != nil {
		t.Fatal(err)
	}
}

func get(c tokenv1.TokenServiceClient, id string) (*tokenv1.GetAccessTokenResponse, error) {
	return c.GetAccessToken(context.Background(), &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: id})
}

// 50 callers on 3 replicas sharing one database ask at once for a token about to expire: the provider
// sees exactly one refresh and every caller gets the new token.
func TestExactlyOneRefreshAcrossReplicas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		z.Delay = 150 * time.Millisecond // widen the window in which a second refresh could slip in
		cfg := config_(t, dbc, z, nil)
		replicas := []*replica{startReplica(t, cfg), startReplica(t, cfg), startReplica(t, cfg)}
		create(t, replicas[0].client, "org-1", z.IssueRefreshToken(), time.Minute) // inside the 5 minute margin
		const callers = 50
		tokens := make([]string, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := get(replicas[i%3].client, "org-1")
				errs[i] = err
				if err == nil {
					tokens[i] = r.GetAccessToken()
				}
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("caller %d: %v", i, err)
			}
			if tokens[i] != tokens[0] {
				t.Fatalf("callers got different tokens: %q vs %q", tokens[i], tokens[0])
			}
		}
		if n := z.Refreshes(); n != 1 {
			t.Fatalf("the provider saw %d refreshes, want exactly 1", n)
		}
		if !z.Valid(tokens[0]) {
			t.Fatal("callers got a token the provider did not issue")
		}
	})
}

func TestValidTokenIsServedWithoutRefresh(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
		for range 20 {
			got, err := get(r.client, "org-1")
			if err != nil || got.GetAccessToken() != "1000.at.initial-org-1" || got.GetApiDomain() != "https://www.zohoapis.eu" {
				t.Fatalf("%v %v", got, err)
			}
		}
		if z.Refreshes() != 0 {
			t.Fatalf("%d refreshes of a valid token", z.Refreshes())
		}
	})
}

func TestFailuresKeepTheStoredToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		create(t, r.client, "soon", z.IssueRefreshToken(), 2*time.Minute) // due, but still valid
		z.FailNext(zohotest.ServerError)
		got, err := get(r.client, "soon")
		if err != nil || got.GetAccessToken() != "1000.at.initial-soon" {
			t.Fatalf("a transient failure with a still-valid token: %v %v", got, err)
		}
		// Backing off: the next call does not hit the provider again.
		if _, err := get(r.client, "soon"); err != nil || z.Refreshes() != 1 {
			t.Fatalf("during backoff: %v, %d refreshes", err, z.Refreshes())
		}
		ev, err := r.client.ListRefreshEvents(context.Background(), &tokenv1.ListRefreshEventsRequest{Provider: "zoho", ConnectionId: "soon"})
		if err != nil || len(ev.GetEvents()) != 1 || ev.GetEvents()[0].GetErrorClass() != "transient" {
			t.Fatalf("history: %v %v", ev, err)
		}

		// An expired token with the provider down: UNAVAILABLE with a retry delay, token kept.
		createExpired(t, r.client, "expired", z.IssueRefreshToken())
		z.FailNext(zohotest.ServerError)
		_, err = get(r.client, "expired")
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("expired + provider down: %v", err)
		}
		if wait, ok := ratelimit.RetryAfter(err); !ok || wait <= 0 {
			t.Fatalf("no retry delay: %v", err)
		}
		conn, _ := r.client.GetConnection(context.Background(), &tokenv1.GetConnectionRequest{Provider: "zoho", ConnectionId: "expired"})
		if conn.GetConnection().GetStatus() != tokenv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE || conn.GetConnection().GetLastRefreshError() != "transient" {
			t.Fatalf("after failure: %v", conn)
		}
	})
}

func TestRevokedRefreshTokenNeedsReauthorization(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		create(t, r.client, "org-1", z.IssueRefreshToken(), time.Minute)
		z.FailNext(zohotest.InvalidCode)
		_, err := get(r.client, "org-1")
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("invalid_code: %v", err)
		}
		for range 3 {
			if _, err := get(r.client, "org-1"); status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("later call: %v", err)
			}
		}
		if z.Refreshes() != 1 {
			t.Fatalf("a dead refresh token was retried: %d refreshes", z.Refreshes())
		}
		c, _ := r.client.GetConnection(context.Background(), &tokenv1.GetConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
		if c.GetConnection().GetStatus() != tokenv1.ConnectionStatus_CONNECTION_STATUS_NEEDS_REAUTHORIZATION {
			t.Fatalf("status %v", c.GetConnection().GetStatus())
		}
		// Storing fresh tokens makes it usable again.
		create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
		if _, err := get(r.client, "org-1"); err != nil {
			t.Fatalf("after re-authorisation: %v", err)
		}
	})
}

// Zoho mints at most 10 access tokens per refresh token per 10 minutes: the service never asks for an
// 11th, and tells callers when to retry.
func TestRefreshBudgetIsNeverExceeded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
		ctx := context.Background()
		var last error
		for range 12 {
			_, last = r.client.RefreshConnection(ctx, &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
		}
		if status.Code(last) != codes.ResourceExhausted {
			t.Fatalf("12th forced refresh: %v", last)
		}
		if wait, ok := ratelimit.RetryAfter(last); !ok || wait < 9*time.Minute {
			t.Fatalf("retry delay %v", wait)
		}
		if z.Refreshes() != 10 {
			t.Fatalf("the provider saw %d refreshes, want 10", z.Refreshes())
		}
		// A valid token is still served while the budget is spent.
		if _, err := get(r.client, "org-1"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestZohoAccessDeniedAtHTTP200BacksOff(t *testing.T) {
	z := zohotest.New(t)
	r := startReplica(t, config_(t, dbtest.Config(t, db.SQLite), z, nil))
	createExpired(t, r.client, "org-1", z.IssueRefreshToken())
	z.FailNext(zohotest.AccessDenied)
	_, err := get(r.client, "org-1")
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Access Denied: %v", err)
	}
	if _, err := get(r.client, "org-1"); status.Code(err) != codes.ResourceExhausted || z.Refreshes() != 1 {
		t.Fatalf("retried inside the backoff: %v, %d", err, z.Refreshes())
	}
}

func TestRotatedRefreshTokenIsStoredAndUsed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		z.Rotate = true
		r := startReplica(t, config_(t, dbc, z, nil))
		create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
		for i := range 3 {
			// Each refresh must present the newest refresh token: the stand-in has retired the others.
			if _, err := r.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
		}
		ev, _ := r.client.ListRefreshEvents(context.Background(), &tokenv1.ListRefreshEventsRequest{Provider: "zoho", ConnectionId: "org-1", PageSize: 2})
		if len(ev.GetEvents()) != 2 || !ev.GetEvents()[0].GetRefreshTokenRotated() || ev.GetNextPageToken() == "" {
			t.Fatalf("history: %v", ev)
		}
	})
}
