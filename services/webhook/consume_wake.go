package webhook

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sergas/core/internal/config"
)

// DefaultReceivePollInterval is how often a waiting consumer (Receive, Poll with a wait) looks for
// deliveries no wake-up announced: those made available on another replica, lease expiries, retries
// whose backoff has passed.
const DefaultReceivePollInterval = 100 * time.Millisecond

// DefaultReceiveHeartbeat is the longest a Receive stream stays silent: it then sends an empty
// message, well within the idle timeouts of common proxies and HTTP clients (30-60 s).
const DefaultReceiveHeartbeat = 15 * time.Second

// ConsumeConfig is how pull consumers are served.
type ConsumeConfig struct {
	// ReceivePollInterval (WEBHOOK_RECEIVE_POLL_INTERVAL) bounds how long a delivery that no in-process
	// wake-up announces waits for a waiting consumer.
	ReceivePollInterval time.Duration
	// ReceiveHeartbeat (WEBHOOK_RECEIVE_HEARTBEAT) is the longest a Receive stream stays silent.
	ReceiveHeartbeat time.Duration
}

// LoadConsumeConfig reads the pull consumers' settings from env.
func LoadConsumeConfig(env *config.Env) ConsumeConfig {
	return ConsumeConfig{
		ReceivePollInterval: env.Duration("WEBHOOK_RECEIVE_POLL_INTERVAL", DefaultReceivePollInterval, 5*time.Millisecond, time.Minute),
		ReceiveHeartbeat:    env.Duration("WEBHOOK_RECEIVE_HEARTBEAT", DefaultReceiveHeartbeat, 100*time.Millisecond, 10*time.Minute),
	}
}

// WithConsumeConfig serves pull consumers as cfg says (DefaultReceivePollInterval without it).
func WithConsumeConfig(cfg ConsumeConfig) Option {
	return func(s *Server) {
		if cfg.ReceivePollInterval > 0 {
			s.consume().pollInterval.Store(int64(cfg.ReceivePollInterval))
		}
		if cfg.ReceiveHeartbeat > 0 {
			s.consume().heartbeat.Store(int64(cfg.ReceiveHeartbeat))
		}
	}
}

// wakeup is an in-process broadcast: every waiter holding the channel of wait() is woken by the next
// notify. A waiter takes the channel before it looks for work, so a notify that comes while it looks
// is not lost (it finds the channel closed and looks again). gen counts the notifies that announced
// work (not those that only freed room, see subState): a consumer that read it before a claim that
// found less than it asked for knows that everything announced up to then was looked at.
type wakeup struct {
	mu  sync.Mutex
	ch  chan struct{}
	gen uint64
}

func newWakeup() *wakeup { return &wakeup{ch: make(chan struct{})} }

// wait returns the channel the next notify closes.
func (w *wakeup) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// notify wakes every waiter: work may be due. Wake-ups that come while nobody waits cost one allocation
// and coalesce.
func (w *wakeup) notify() { w.signal(true) }

// signal wakes every waiter, counting the wake-up in gen when it announces work.
func (w *wakeup) signal(work bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
	if work {
		w.gen++
	}
}

// generation is how many notifies announced work so far.
func (w *wakeup) generation() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

// consumeState is a server's pull-consumer state.
type consumeState struct {
	// wake is for news about every subscription (events stored: Ingest does not know which
	// subscriptions they matched); subs holds the state of each subscription consumed here, with its
	// wakeup for news about it alone (a settle that frees room or gives a delivery back, a redrive), so
	// that a busy consumer's acks do not wake the consumers of every other subscription.
	wake         *wakeup
	subs         sync.Map     // subscription id -> *subState
	pollInterval atomic.Int64 // a time.Duration
	// heartbeat is how long a Receive stream stays silent at most (a time.Duration).
	heartbeat atomic.Int64
	// waiting counts the consumers waiting for a wake-up (tests wait for it before they wake them).
	waiting atomic.Int32
	// lookups counts the times a Receive stream asked the store for its deliveries in flight (each
	// followed by a claim when there was room): what a wake-up costs (tests read it).
	lookups atomic.Int64
}

// newConsumeState is a server's pull-consumer state at DefaultReceivePollInterval.
func newConsumeState() *consumeState {
	st := &consumeState{wake: newWakeup()}
	st.pollInterval.Store(int64(DefaultReceivePollInterval))
	st.heartbeat.Store(int64(DefaultReceiveHeartbeat))
	return st
}

// consume returns s's pull-consumer state.
func (s *Server) consume() *consumeState { return s.consumer }

// subWake returns the wakeup of subscription sub, made on first use (by a consumer of a subscription
// that exists; one per subscription consumed since the start).
func (st *consumeState) subWake(sub string) *wakeup { return st.sub(sub).wakeup }

// sub returns the state of subscription sub, made on first use (see subWake).
func (st *consumeState) sub(sub string) *subState {
	if v, ok := st.subs.Load(sub); ok {
		return v.(*subState)
	}
	v, _ := st.subs.LoadOrStore(sub, newSubState())
	return v.(*subState)
}

// wakeSubscription tells the consumers waiting on subscription sub that deliveries may have become
// available or room may have been freed. Only subscriptions a consumer has waited on have a wakeup: the
// ids of ack ids are the caller's to choose, and must not add entries.
func (s *Server) wakeSubscription(sub string) {
	if v, ok := s.consume().subs.Load(sub); ok {
		v.(*subState).notify()
	}
}

// wakeConsumers tells every waiting consumer that deliveries may have become available: Ingest calls it
// after the commit that stored new events (and their deliveries).
func (s *Server) wakeConsumers() { s.consume().wake.notify() }
