package webhook

import (
	"time"

	"github.com/sergas/core/internal/config"
)

// PushConfig is how push subscriptions are delivered on this replica.
//
// Each of Workers claims up to BatchSize due deliveries of one push subscription at a time (it does not
// wait to fill a batch: a worker that finds three sends three at once) and POSTs them in parallel, each
// bounded by the subscription's timeout. BatchTimeout is how long the worker waits for a batch's answers:
// when all have come, or BatchTimeout after the claim, it records those it has in one settle
// transaction and goes on; a request still running then goes on to its own timeout and is recorded when
// it ends. A worker keeps at most BatchSize requests in flight (a claim asks only for the room left), so
// one hung endpoint costs the requests it holds, not a whole worker, and a replica sends at most
// Workers × BatchSize requests at once.
type PushConfig struct {
	// Workers (WEBHOOK_NUM_WORKERS): 0 turns push delivery off on this replica.
	Workers int
	// BatchSize (WEBHOOK_BATCH_SIZE) is the most deliveries a worker claims at once and has in flight.
	BatchSize int
	// BatchTimeout (WEBHOOK_BATCH_TIMEOUT): see PushConfig.
	BatchTimeout time.Duration
}

// Push defaults (issue #10).
const (
	defaultPushWorkers      = 3
	defaultPushBatchSize    = 10
	defaultPushBatchTimeout = 5 * time.Second
)

// LoadPushConfig reads the push workers' settings from env.
func LoadPushConfig(env *config.Env) PushConfig {
	return PushConfig{
		Workers:      env.Int("WEBHOOK_NUM_WORKERS", defaultPushWorkers, 0, 256),
		BatchSize:    env.Int("WEBHOOK_BATCH_SIZE", defaultPushBatchSize, 1, maxClaim),
		BatchTimeout: env.Duration("WEBHOOK_BATCH_TIMEOUT", defaultPushBatchTimeout, 100*time.Millisecond, maxPushTimeout),
	}
}
