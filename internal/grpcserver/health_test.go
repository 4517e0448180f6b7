package grpcserver

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/testutil"
)

var errGone = errors.New("database gone")

// Item 14 of issue 7: health follows the failures and recoveries of real requests, not only the periodic
// ping (here an hour apart, so that it never decides).
func TestHealthFollowsRealRequests(t *testing.T) {
	var mu sync.Mutex
	reply, pingErr := error(nil), error(nil)
	set := func(r, p error) { mu.Lock(); reply, pingErr = r, p; mu.Unlock() }
	var pings atomic.Int64
	s, conn, _, _ := startProbe(t, &probe{do: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return reply }})
	down := func(err error) bool { return errors.Is(err, errGone) }
	go s.WatchHealth(t.Context(), time.Hour, func(context.Context) error {
		pings.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return pingErr
	}, down)
	health := healthpb.NewHealthClient(conn)
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "test.Probe"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) {
		t.Helper()
		if _, met := testutil.Wait(within, func() bool { return status() == want }); !met {
			t.Fatalf("health not %v within %v (%d pings)", want, within, pings.Load())
		}
	}
	if status() != healthpb.HealthCheckResponse_SERVING {
		t.Fatal("precondition: not SERVING at start")
	}
	// An error that is not an outage changes nothing.
	set(errs.NotFound("no such thing"), nil)
	_ = call(t.Context(), conn)
	if status() != healthpb.HealthCheckResponse_SERVING {
		t.Fatal("a NotFound made the server NOT_SERVING")
	}
	// The database goes away: the first request that finds out flips health before it is answered.
	set(errs.Wrap(errs.KindUnavailable, errGone, "database unavailable"), errGone)
	if err := call(t.Context(), conn); err == nil {
		t.Fatal("precondition: the request did not fail")
	}
	if got := status(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after a request found the database gone: %v", got)
	}
	// It comes back; a successful request brings SERVING back at once (it prompts a ping).
	set(nil, nil)
	if err := call(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	waitFor(healthpb.HealthCheckResponse_SERVING, 2*time.Second)

	// Without traffic, an unhealthy dependency is pinged often: recovery shows within a second.
	set(errs.Wrap(errs.KindUnavailable, errGone, "database unavailable"), errGone)
	_ = call(t.Context(), conn)
	if got := status(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second outage: %v", got)
	}
	before := pings.Load()
	set(nil, nil) // the ping succeeds; no request is made
	waitFor(healthpb.HealthCheckResponse_SERVING, 2*time.Second)
	if pings.Load() == before {
		t.Fatal("SERVING without a ping")
	}
}
