package client

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// A RetryInfo delay beyond what a time.Duration holds (a service or proxy saying "not for centuries")
// is no reason to retry at once: the delay saturates instead of wrapping to a negative wait, so the
// call gives up (the wait is past MaxElapsed) after one attempt.
func TestHugeRetryInfoIsNotRetriedAtOnce(t *testing.T) {
	st, err := status.New(codes.ResourceExhausted, "rate limited").WithDetails(&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 315576000000}})
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultRetry.withDefaults()
	for _, rnd := range []func(int64) int64{lowest, highest} {
		if wait, ok := p.retryDelay(st.Err(), 1, rnd); ok && wait < p.MaxElapsed {
			t.Fatalf("wait %v: a retry within MaxElapsed", wait)
		}
	}
	calls := 0
	start := time.Now()
	_ = p.do(context.Background(), "/m", func(context.Context) error { calls++; return st.Err() })
	if calls != 1 || time.Since(start) > time.Second {
		t.Fatalf("%d calls in %v, want 1 at once", calls, time.Since(start))
	}
}
