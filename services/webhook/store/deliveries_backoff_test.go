package store

import (
	"math"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	p := RetryPolicy{BackoffBase: time.Second, BackoffCap: 10 * time.Second}
	for _, c := range []struct {
		attempt int32
		j       Jitter
		u       float64
		want    time.Duration
	}{
		{1, NoJitter, 0.5, time.Second},
		{2, NoJitter, 0.5, 2 * time.Second},
		{3, NoJitter, 0.5, 4 * time.Second},
		{4, NoJitter, 0.5, 8 * time.Second},
		{5, NoJitter, 0.5, 10 * time.Second},           // capped
		{math.MaxInt32, NoJitter, 0, 10 * time.Second}, // no overflow, however many attempts
		{0, NoJitter, 0, time.Second},                  // before any attempt: as the first
		{3, FullJitter, 0, 0},
		{3, FullJitter, 0.25, time.Second},
		{3, FullJitter, 0.999999, 4*time.Second - 4*time.Microsecond},
		{3, EqualJitter, 0, 2 * time.Second},
		{3, EqualJitter, 0.5, 3 * time.Second},
		{5, EqualJitter, 1, 10 * time.Second}, // u is clamped to [0, 1]
		{5, EqualJitter, -3, 5 * time.Second},
	} {
		if got := Backoff(p, c.attempt, c.j, c.u); got != c.want {
			t.Errorf("Backoff(attempt %d, jitter %d, u %v) = %v, want %v", c.attempt, c.j, c.u, got, c.want)
		}
	}
	if got := Backoff(RetryPolicy{}, 3, EqualJitter, 0.5); got != 0 {
		t.Errorf("no backoff configured: %v", got)
	}
	if got := Backoff(RetryPolicy{BackoffBase: time.Hour, BackoffCap: time.Hour}, 9, NoJitter, 0); got != time.Hour {
		t.Errorf("base at the cap: %v", got)
	}
	huge := RetryPolicy{BackoffBase: time.Duration(math.MaxInt64 / 3), BackoffCap: time.Duration(math.MaxInt64)}
	for attempt := int32(1); attempt < 70; attempt++ {
		if got := Backoff(huge, attempt, NoJitter, 0); got < huge.BackoffBase || got > huge.BackoffCap {
			t.Fatalf("attempt %d: %v overflowed", attempt, got)
		}
	}
}
