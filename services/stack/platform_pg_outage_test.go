package stack_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/internal/testutil"
)

// Items 12 and 14 of issue 7, end to end: the stack runs on a PostgreSQL of its own, which is killed
// (pg_ctl stop -m immediate) under load and started again. Every failed call is UNAVAILABLE with
// RetryInfo (503 with Retry-After through the gateway), never INTERNAL; health turns NOT_SERVING as soon
// as a request finds the database gone and SERVING soon after it is back; the same processes serve again.
func TestPostgresOutageUnderLoad(t *testing.T) {
	pg := dbtest.StartPGServer(t)
	r := start(t, map[string]string{"DATABASE_URL": pg.URL})
	health := healthpb.NewHealthClient(r.conns["token"])
	tokenHealth := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: tokenv1.TokenService_ServiceDesc.ServiceName})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	readyz := func() int {
		resp, err := http.Get(r.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if tokenHealth() != healthpb.HealthCheckResponse_SERVING || readyz() != 200 {
		t.Fatal("precondition: not ready before the outage")
	}

	var ok, unavailable atomic.Int64
	var firstUnavailable atomic.Pointer[error]
	var mu sync.Mutex
	var wrong []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200000; i++ { // bounded; ended by stop
				select {
				case <-stop:
					return
				default:
				}
				_, err := r.token.ListConnections(t.Context(), &tokenv1.ListConnectionsRequest{})
				switch {
				case err == nil:
					ok.Add(1)
				case status.Code(err) == codes.Unavailable:
					if _, has := ratelimit.RetryAfter(err); !has {
						mu.Lock()
						wrong = append(wrong, fmt.Errorf("UNAVAILABLE without RetryInfo: %w", err))
						mu.Unlock()
					}
					unavailable.Add(1)
					firstUnavailable.CompareAndSwap(nil, &err)
				default:
					mu.Lock()
					wrong = append(wrong, err)
					mu.Unlock()
				}
			}
		}()
	}
	finish := func() { close(stop); wg.Wait() }
	waitFor := func(what string, within time.Duration, cond func() bool) time.Duration {
		t.Helper()
		took, met := testutil.Wait(within, cond)
		if !met {
			finish()
			t.Fatalf("%s: not within %v (ok %d, unavailable %d)", what, within, ok.Load(), unavailable.Load())
		}
		return took
	}
	waitFor("calls under load", 10*time.Second, func() bool { return ok.Load() > 100 })
	pg.StopImmediate()
	waitFor("a call finding the database gone", 10*time.Second, func() bool { return firstUnavailable.Load() != nil })
	if got := tokenHealth(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		finish()
		t.Fatalf("token health %v after calls answered UNAVAILABLE", got)
	}
	down := waitFor("/readyz 503", 2*time.Second, func() bool { return readyz() == http.StatusServiceUnavailable })
	// REST: 503 with Retry-After.
	req, _ := http.NewRequest("GET", r.base+"/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+r.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		finish()
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("REST during the outage: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	pg.Start()
	served := ok.Load()
	back := waitFor("calls served again", 15*time.Second, func() bool { return ok.Load() > served+100 })
	up := waitFor("/readyz 200", 2*time.Second, func() bool { return readyz() == 200 })
	finish()
	for _, err := range wrong {
		t.Errorf("during the outage: %v", err)
	}
	t.Logf("ok %d, unavailable %d; /readyz 503 %v after the first UNAVAILABLE; served again %v after restart, /readyz 200 %v later",
		ok.Load(), unavailable.Load(), down.Round(time.Millisecond), back.Round(time.Millisecond), up.Round(time.Millisecond))
}
