package client

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RetryPolicy bounds the retries of a call that is safe to repeat (see Retryable). Only two answers are
// retried: UNAVAILABLE (the service was not reached, is stopping, or the connection broke), after an
// exponential backoff with jitter or the delay its RetryInfo names; and RESOURCE_EXHAUSTED that carries
// a RetryInfo (a rate limit: the services send one saying when the budget refills), after that delay.
// Every other code is the answer: retrying PERMISSION_DENIED, INVALID_ARGUMENT or a RESOURCE_EXHAUSTED
// without RetryInfo (a message over the size limit) would fail the same way.
type RetryPolicy struct {
	// MaxAttempts counts the first try: 1 turns retries off. Default 5.
	MaxAttempts int
	// InitialBackoff is the backoff before the first retry of UNAVAILABLE; each next one doubles, up to
	// MaxBackoff. Defaults 100 ms and 5 s.
	InitialBackoff, MaxBackoff time.Duration
	// MaxElapsed is the time after the first try beyond which no retry is started (a wait that would end
	// later is not begun). Default 30 s. The context's deadline bounds it further.
	MaxElapsed time.Duration
	// OnRetry, when set, is told of every retry before its wait (for logs and metrics).
	OnRetry func(RetryEvent)
}

// RetryEvent describes one retry.
type RetryEvent struct {
	Method  string        // full gRPC method name
	Attempt int           // the attempt that failed, 1 for the first
	Err     error         // its error
	Wait    time.Duration // how long the client waits before the next attempt
}

// DefaultRetry is the policy of a zero RetryPolicy.
var DefaultRetry = RetryPolicy{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, MaxElapsed: 30 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetry
	if p.MaxAttempts > 0 {
		d.MaxAttempts = p.MaxAttempts
	}
	if p.InitialBackoff > 0 {
		d.InitialBackoff = p.InitialBackoff
	}
	if p.MaxBackoff > 0 {
		d.MaxBackoff = p.MaxBackoff
	}
	if d.MaxBackoff < d.InitialBackoff {
		d.MaxBackoff = d.InitialBackoff
	}
	if p.MaxElapsed > 0 {
		d.MaxElapsed = p.MaxElapsed
	}
	d.OnRetry = p.OnRetry
	return d
}

// backoff is the wait before retry n (1 for the first retry): the exponential step min(MaxBackoff,
// InitialBackoff·2^(n-1)), jittered uniformly over its upper half, so that clients that failed together
// spread out while the wait still grows with every attempt.
func (p RetryPolicy) backoff(n int, rnd func(int64) int64) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	return time.Duration(half + rnd(half+1))
}

// RetryDelay returns how long to wait before repeating a call that failed with err, and whether it may
// be repeated at all (the call itself being safe to repeat): UNAVAILABLE after the backoff of attempt
// (or its RetryInfo delay when longer), RESOURCE_EXHAUSTED only with a RetryInfo, after that delay and a
// jitter of up to a tenth of it (so that callers throttled together do not return together).
func (p RetryPolicy) RetryDelay(err error, attempt int) (time.Duration, bool) {
	return p.withDefaults().retryDelay(err, attempt, rand.Int64N)
}

func (p RetryPolicy) retryDelay(err error, attempt int, rnd func(int64) int64) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	info, hasInfo := RetryInfo(err)
	switch st.Code() {
	case codes.Unavailable:
		wait := p.backoff(attempt, rnd)
		if hasInfo && info > wait {
			wait = info
		}
		return wait, true
	case codes.ResourceExhausted:
		if !hasInfo {
			return 0, false
		}
		// The services round the delay to the millisecond: one more keeps a retry from arriving just early.
		// The sum saturates: a delay near the largest Duration would otherwise wrap to a negative wait,
		// a retry at once.
		wait := info + time.Millisecond + time.Duration(rnd(int64(info/10)+1))
		if wait < info {
			wait = time.Duration(math.MaxInt64)
		}
		return wait, true
	}
	return 0, false
}

// RetryInfo returns the delay of the google.rpc.RetryInfo detail err carries, if any.
func RetryInfo(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return max(ri.GetRetryDelay().AsDuration(), 0), true
		}
	}
	return 0, false
}

// unaryInterceptor repeats a safe call (Retryable) under the policy. The request is sent again as it is,
// so an idempotency key in it stays the same across attempts.
func (p RetryPolicy) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if p.MaxAttempts <= 1 || !Retryable(ctx, method, req) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	return p.do(ctx, method, func(ctx context.Context) error { return invoker(ctx, method, req, reply, cc, opts...) })
}

// do runs call until it succeeds, fails in a way that is not retried, or the attempts, the elapsed time
// or ctx run out; it returns the last error.
func (p RetryPolicy) do(ctx context.Context, method string, call func(context.Context) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		if err == nil || attempt >= p.MaxAttempts || ctx.Err() != nil {
			return err
		}
		wait, ok := p.retryDelay(err, attempt, rand.Int64N)
		// Compared without adding to wait, which may be the largest Duration: a sum would wrap.
		if !ok || wait > p.MaxElapsed-time.Since(start) {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // the next attempt could not finish in time: the answer we have is better
		}
		if p.OnRetry != nil {
			p.OnRetry(RetryEvent{Method: method, Attempt: attempt, Err: err, Wait: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
}
