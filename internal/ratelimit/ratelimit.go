// Package ratelimit keeps one token bucket per key (a credential, a webhook source), created on first use
// and forgotten after a while unused, so that the map cannot grow without bound.
package ratelimit

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Keyed limits each key to Rate events per second with bursts of Burst.
type Keyed struct {
	rate  rate.Limit
	burst int
	idle  time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// New returns a limiter; perSecond <= 0 means unlimited.
func New(perSecond float64, burst int) *Keyed {
	r := rate.Limit(perSecond)
	if perSecond <= 0 {
		r = rate.Inf
	}
	return &Keyed{rate: r, burst: max(burst, 1), idle: 10 * time.Minute, buckets: map[string]*bucket{}}
}

// Allow takes one token from key's bucket. When none is left it returns false and how long until one is.
func (k *Keyed) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if k.rate == rate.Inf {
		return true, 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.swept) > k.idle {
		for key, b := range k.buckets {
			if now.Sub(b.used) > k.idle {
				delete(k.buckets, key)
			}
		}
		k.swept = now
	}
	b, found := k.buckets[key]
	if !found {
		b = &bucket{lim: rate.NewLimiter(k.rate, k.burst)}
		k.buckets[key] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Blocked reports whether key's bucket is empty, without taking a token, and how long until it holds
// one. A key never seen is not blocked.
func (k *Keyed) Blocked(key string, now time.Time) (blocked bool, retryAfter time.Duration) {
	if k.rate == rate.Inf {
		return false, 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	b, found := k.buckets[key]
	if !found {
		return false, 0
	}
	tokens := b.lim.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / float64(k.rate) * float64(time.Second))
}

// Exceeded is the error a caller gets when its bucket is empty: RESOURCE_EXHAUSTED with a RetryInfo
// detail saying when to try again (the gateway turns it into 429 with Retry-After).
func Exceeded(what string, wait time.Duration) error {
	return RetryError(codes.ResourceExhausted, what+" rate limit exceeded", wait)
}

// RetryError is a status error with code, msg and a RetryInfo detail saying when to try again (also in
// the message, for people reading it).
func RetryError(code codes.Code, msg string, wait time.Duration) error {
	wait = max(wait, time.Millisecond).Round(time.Millisecond)
	st, _ := status.New(code, fmt.Sprintf("%s, retry after %s", msg, wait)).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	return st.Err()
}

// RetryAfter returns the RetryInfo delay carried by err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}
