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
	start := time.Now()
	f := startFlood(attacker, 4, 2*time.Second)
	const targeted = 10
	ctx := metadataCtx(t.Context(), "Bearer "+reader.Key)
	for range targeted {
		_, err := honest.DeleteConnection(ctx, &tokenv1.DeleteConnectionRequest{Provider: "zoho", ConnectionId: "victim"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("key without token:admin: %v", err)
		}
	}
	f.wait()
	elapsed := time.Since(start)
	flood := f.unauthenticated.Load() + f.exhausted.Load()
	if flood < 200 || f.other.Load() != 0 { // several times what the address may spend
		t.Fatalf("precondition: the flood made only %d refused calls (%d other answers)", flood, f.other.Load())
	}
	// Limited by address before authentication: the burst and the refill, nothing more.
	maxUnauth := int64(auth.DefaultLimits.Failures.Burst) + int64(auth.DefaultLimits.Failures.PerSecond*elapsed.Seconds()) + 4
	if f.unauthenticated.Load() > maxUnauth {
		t.Errorf("%d calls reached authentication from the flooding address (at most %d allowed)", f.unauthenticated.Load(), maxUnauth)
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
	t.Logf("flood: %d refused calls in %v (%d reached authentication); %d log lines", flood, elapsed.Round(time.Millisecond), f.unauthenticated.Load(), lines)
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

	f := startFlood(attacker, 2, 20*time.Second)
	defer f.stop()
	if _, ok := testutil.Wait(10*time.Second, func() bool { return f.exhausted.Load() > 20 }); !ok {
		f.stop()
		t.Fatalf("precondition: the flood never spent the address's budget (%d refused, %d other)", f.unauthenticated.Load(), f.other.Load())
	}
	ctx := metadataCtx(t.Context(), "Bearer "+reader.Key)
	const targeted = 10
	for i := range targeted {
		if _, err := honest.ListConnections(ctx, &tokenv1.ListConnectionsRequest{}); err != nil {
			f.stop()
			t.Fatalf("valid key on the flooded address, call %d: %v", i, err)
		}
		_, err := honest.DeleteConnection(ctx, &tokenv1.DeleteConnectionRequest{Provider: "zoho", ConnectionId: "victim"})
		if status.Code(err) != codes.PermissionDenied {
			f.stop()
			t.Fatalf("key without token:admin on the flooded address: %v", err)
		}
	}
	f.stop()
	if f.other.Load() != 0 {
		t.Fatalf("the attacker got %d answers other than refusals", f.other.Load())
	}
	flood := f.unauthenticated.Load() + f.exhausted.Load()

	// The denial writer, on the same address, delivered every refusal of the real key one by one and
	// the flood summed up.
	var known int
	var counted float64
	testutil.Eventually(t, 15*time.Second, "the refusals in the audit log", func() bool {
		known, counted = deniedFrom(t, r, "127.0.0.1", "127.0.0.1")
		return known == targeted && int64(counted) == flood
	})
	t.Logf("flood: %d refused calls (%d before the address was limited); %d targeted refusals recorded", flood, f.unauthenticated.Load(), known)
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

// anonFlood is threads calling GetAccessToken without credentials, as fast as they can, until stop or until
// its time is up (bounded in count too), counting the answers.
type anonFlood struct {
	unauthenticated, exhausted, other atomic.Int64
	halt                              chan struct{}
	wg                                sync.WaitGroup
	stop                              func() // ends the flood and waits for it
}

func startFlood(attacker tokenv1.TokenServiceClient, threads int, within time.Duration) *anonFlood {
	f := &anonFlood{halt: make(chan struct{})}
	f.stop = sync.OnceFunc(func() { close(f.halt); f.wg.Wait() })
	until := time.Now().Add(within)
	for range threads {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for i := 0; i < 20000 && time.Now().Before(until); i++ { // bounded in count and time
				select {
				case <-f.halt:
					return
				default:
				}
				_, err := attacker.GetAccessToken(context.Background(), &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "x"})
				switch status.Code(err) {
				case codes.Unauthenticated:
					f.unauthenticated.Add(1)
				case codes.ResourceExhausted:
					f.exhausted.Add(1)
				default:
					f.other.Add(1)
				}
			}
		}()
	}
	return f
}

// wait waits for the flood to run out of time.
func (f *anonFlood) wait() { f.wg.Wait() }
