package stack_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/testutil"
)

// connFrom dials addr from a chosen loopback address, so that one test plays an attacker and an honest
// client at different addresses.
func connFrom(t *testing.T, addr, local string) *grpc.ClientConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The flood of issue 7, item 2: four threads hammer GetAccessToken without credentials while a real key
// tries an RPC whose scope it lacks, with a low RATE_LIMIT_PER_SECOND. Before, the flood was served at
// full speed, wrote a WARN line per call, spent the denial log's budget so the real key's refusals were
// never recorded, and spent the budget of the key the denial log writes with.
func TestRefusalFloodKeepsTheAuditTrail(t *testing.T) {
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	reader := authtest.NewKey(t, "reader", auth.ScopeTokenRead)
	writer := authtest.NewKey(t, "audit-writer", auth.ScopeAuditWrite)
	var logs testutil.LogBuffer
	r := startLogging(t, map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin, reader, writer), "TEST_ADMIN_KEY": admin.Key,
		"AUDIT_CLIENT_API_KEY": writer.Key, "RATE_LIMIT_PER_SECOND": "1", "RATE_LIMIT_BURST": "2",
		"AUDIT_DENIAL_INTERVAL": "200ms",
	}, &logs)

	attacker := tokenv1.NewTokenServiceClient(connFrom(t, r.addrs.Token, "127.0.0.2"))
	honest := tokenv1.NewTokenServiceClient(connFrom(t, r.addrs.Token, "127.0.0.1"))
	var unauthenticated, exhausted, other atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000 && time.Now().Before(stop); i++ { // bounded in count and time
				_, err := attacker.GetAccessToken(t.Context(), &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "x"})
				switch status.Code(err) {
				case codes.Unauthenticated:
					unauthenticated.Add(1)
				case codes.ResourceExhausted:
					exhausted.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	const targeted = 10
	ctx := metadataCtx(t.Context(), "Bearer "+reader.Key)
	for range targeted {
		_, err := honest.DeleteConnection(ctx, &tokenv1.DeleteConnectionRequest{Provider: "zoho", ConnectionId: "victim"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("key without token:admin: %v", err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	flood := unauthenticated.Load() + exhausted.Load()
	if flood < 200 || other.Load() != 0 { // several times what the address may spend
		t.Fatalf("precondition: the flood made only %d refused calls (%d other answers)", flood, other.Load())
	}
	// Limited by address before authentication: the burst and the refill, nothing more.
	maxUnauth := int64(auth.DefaultLimits.Failures.Burst) + int64(auth.DefaultLimits.Failures.PerSecond*elapsed.Seconds()) + 4
	if unauthenticated.Load() > maxUnauth {
		t.Errorf("%d calls reached authentication from the flooding address (at most %d allowed)", unauthenticated.Load(), maxUnauth)
	}

	// Every refusal of the real key is in the audit log, one event each; the flood is there summed up,
	// its counts adding up to every refused call.
	var known int
	var counted float64
	if _, met := testutil.Wait(15*time.Second, func() bool {
		known, counted = deniedFrom(t, r, "127.0.0.1", "127.0.0.2")
		return known == targeted && int64(counted) == flood
	}); !met {
		t.Fatalf("audit log: %d of %d refusals of the real key, flood counted %.0f of %d", known, targeted, counted, flood)
	}

	// The log holds a sampled handful of refusal lines, not one per call.
	lines := strings.Count(logs.String(), "GetAccessToken")
	if lines == 0 || lines > 100 {
		t.Errorf("%d log lines mention GetAccessToken for %d refused calls", lines, flood)
	}
	t.Logf("flood: %d refused calls in %v (%d reached authentication); %d log lines", flood, elapsed.Round(time.Millisecond), unauthenticated.Load(), lines)
}

// The reviewer's P1, end to end: the attacker, an honest key and the services' own denial writer share
// one address (127.0.0.1, as the gateway's HTTP clients and the audit client do in `make run`). Once the
// flood has spent the address's failure budget, the honest key's calls still succeed, its refusals for a
// scope it lacks are still refusals of a known key, and the denial writer still delivers them and the
// summed-up flood to the audit log; the attacker stays limited.
func TestSharedAddressFloodLocksOutOnlyTheAttacker(t *testing.T) {
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	reader := authtest.NewKey(t, "reader", auth.ScopeTokenRead)
	writer := authtest.NewKey(t, "audit-writer", auth.ScopeAuditWrite)
	r := start(t, map[string]string{
		"AUTH_API_KEYS": authtest.JSON(admin, reader, writer), "TEST_ADMIN_KEY": admin.Key,
		"AUDIT_CLIENT_API_KEY": writer.Key, "AUDIT_DENIAL_INTERVAL": "200ms",
		"RATE_LIMIT_FAILED_PER_SECOND": "1", "RATE_LIMIT_FAILED_BURST": "5",
	})
	attacker := tokenv1.NewTokenServiceClient(connFrom(t, r.addrs.Token, "127.0.0.1"))
	honest := tokenv1.NewTokenServiceClient(connFrom(t, r.addrs.Token, "127.0.0.1"))

	var refused, exhausted, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ { // bounded; ended by stop
				select {
				case <-stop:
					return
				default:
				}
				_, err := attacker.GetAccessToken(t.Context(), &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "x"})
				switch status.Code(err) {
				case codes.Unauthenticated:
					refused.Add(1)
				case codes.ResourceExhausted:
					exhausted.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	finish := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer finish()
	if _, ok := testutil.Wait(10*time.Second, func() bool { return exhausted.Load() > 20 }); !ok {
		finish()
		t.Fatalf("precondition: the flood never spent the address's budget (%d refused, %d other)", refused.Load(), other.Load())
	}
	ctx := metadataCtx(t.Context(), "Bearer "+reader.Key)
	const targeted = 10
	for i := range targeted {
		if _, err := honest.ListConnections(ctx, &tokenv1.ListConnectionsRequest{}); err != nil {
			finish()
			t.Fatalf("valid key on the flooded address, call %d: %v", i, err)
		}
		_, err := honest.DeleteConnection(ctx, &tokenv1.DeleteConnectionRequest{Provider: "zoho", ConnectionId: "victim"})
		if status.Code(err) != codes.PermissionDenied {
			finish()
			t.Fatalf("key without token:admin on the flooded address: %v", err)
		}
	}
	finish()
	if other.Load() != 0 {
		t.Fatalf("the attacker got %d answers other than refusals", other.Load())
	}
	flood := refused.Load() + exhausted.Load()

	// The denial writer, on the same address, delivered every refusal of the real key one by one and
	// the flood summed up.
	var known int
	var counted float64
	testutil.Eventually(t, 15*time.Second, "the refusals in the audit log", func() bool {
		known, counted = deniedFrom(t, r, "127.0.0.1", "127.0.0.1")
		return known == targeted && int64(counted) == flood
	})
	t.Logf("flood: %d refused calls (%d before the address was limited); %d targeted refusals recorded", flood, refused.Load(), known)
}

// deniedFrom reads the audit log's auth.denied events: how many refusals of apikey:reader for a scope it
// lacks were recorded from readerAddr, and how many anonymous refusals from floodAddr they sum up to.
func deniedFrom(t *testing.T, r *running, readerAddr, floodAddr string) (known int, counted float64) {
	t.Helper()
	for _, actor := range []string{"apikey:reader", "anonymous"} {
		list, err := r.audit.ListEvents(t.Context(), &auditv1.ListEventsRequest{Action: "auth.denied", Actor: actor, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list.GetEvents() {
			m := e.GetMetadata().GetFields()
			switch {
			case actor == "apikey:reader" && m["reason"].GetStringValue() == "insufficient_scope" && m["peer"].GetStringValue() == readerAddr:
				known++
			case actor == "anonymous" && m["peer"].GetStringValue() == floodAddr:
				counted += m["count"].GetNumberValue()
			}
		}
	}
	return known, counted
}
