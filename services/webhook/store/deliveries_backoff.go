package store

import "time"

// Jitter says how Backoff spreads retries that would otherwise come back together.
type Jitter int

// Jitter kinds.
const (
	// NoJitter is the capped exponential delay itself.
	NoJitter Jitter = iota
	// FullJitter is uniform in [0, delay): spreads the most, but may retry at once.
	FullJitter
	// EqualJitter is delay/2 plus uniform in [0, delay/2): never less than half the delay. The settle of a
	// nack uses it, so that a consumer failing fast cannot turn backoff into a busy loop.
	EqualJitter
)

// Backoff is the wait before the attempt after attempt number attempt (1 for the first) failed:
// base * 2^(attempt-1), at most cap, then jittered with u, a uniform random number in [0, 1). It is a pure
// function so that tests pin u.
func Backoff(p RetryPolicy, attempt int32, j Jitter, u float64) time.Duration {
	if p.BackoffBase <= 0 || p.BackoffCap <= 0 {
		return 0
	}
	d := p.BackoffCap
	if attempt < 1 {
		attempt = 1
	}
	// Doubling base attempt-1 times stops at the cap, and before it could overflow: a delay above half
	// the cap doubles to the cap.
	if b := p.BackoffBase; b < p.BackoffCap {
		d = b
		for i := int32(1); i < attempt && d < p.BackoffCap; i++ {
			if d > p.BackoffCap/2 {
				d = p.BackoffCap
				break
			}
			d *= 2
		}
	}
	u = min(max(u, 0), 1)
	switch j {
	case FullJitter:
		return time.Duration(float64(d) * u)
	case EqualJitter:
		return d/2 + time.Duration(float64(d/2)*u)
	}
	return d
}
