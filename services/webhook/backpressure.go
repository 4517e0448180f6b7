package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/sergas/core/services/webhook/store"
)

// backlogCheckInterval is how long a count of the undelivered backlog is reused. Counting on every
// delivery would make a flood run a COUNT per request against the table it is filling; a count at most
// this old lets the backlog overshoot WEBHOOK_MAX_QUEUE_SIZE by at most what arrives in that time.
const backlogCheckInterval = 250 * time.Millisecond

// backlog answers whether the undelivered backlog is full, from a cached count.
type backlog struct {
	counter store.BacklogCounter // nil: no limit
	max     int64

	mu       sync.Mutex
	count    int64
	counted  time.Time
	counting bool // one caller counts; the others use the previous count meanwhile
}

// full reports whether the backlog has reached max. A count that fails keeps the previous answer: the
// insert that follows will meet the same database and fail on its own.
func (b *backlog) full(ctx context.Context, now time.Time) bool {
	if b.counter == nil || b.max <= 0 {
		return false
	}
	b.mu.Lock()
	stale := b.counted.IsZero() || now.Sub(b.counted) >= backlogCheckInterval || now.Before(b.counted)
	if !stale || (b.counting && !b.counted.IsZero()) {
		n := b.count
		b.mu.Unlock()
		return n >= b.max
	}
	b.counting = true
	b.mu.Unlock()
	n, err := b.counter.EventBacklog(ctx, b.max)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.counting = false
	if err == nil {
		b.count, b.counted = n, now
		backlogGauge.Set(float64(n))
	}
	return b.count >= b.max
}
