package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// GroupCommit bounds how RecordEvent calls are gathered into one transaction.
type GroupCommit struct {
	// MaxEvents is the most events one transaction appends; 1 appends each call on its own.
	MaxEvents int
	// Window is how long the committer waits for a batch to fill while calls arrive together, that is
	// after a batch of more than one, until a window passes with no call; calls that come one at a
	// time are committed at once.
	Window time.Duration
}

// DefaultGroupCommit is the group commit without configuration.
var DefaultGroupCommit = GroupCommit{MaxEvents: 256, Window: 2 * time.Millisecond}

// commitTimeout bounds one append transaction, whoever waits on it.
const commitTimeout = 30 * time.Second

// committer gathers concurrent appends and writes each gathered batch in one transaction of the store's
// append algorithm: one commit (one fsync on SQLite, one round of the chain head's lock on PostgreSQL)
// for many events. Every caller is answered after that commit, with its own result. It runs as a
// platform worker (Run); while it does not run (before the platform starts it, after it has stopped,
// or in a process that serves without workers) calls are appended one by one, by the same algorithm.
type committer struct {
	st  store.Store
	cfg GroupCommit
	log *slog.Logger

	mu      sync.Mutex
	running bool
	// queue holds accepted calls in arrival order. It is not bounded here: each call is an RPC waiting
	// for its answer, so the server's limits on concurrent RPCs bound it.
	queue []*call
	wake  chan struct{} // the queue became non-empty
	full  chan struct{} // the queue reached MaxEvents
}

type call struct {
	ctx  context.Context
	p    store.Pending
	res  store.Result
	err  error
	done chan struct{}
}

func newCommitter(st store.Store, cfg GroupCommit, log *slog.Logger) *committer {
	return &committer{st: st, cfg: cfg, log: log, wake: make(chan struct{}, 1), full: make(chan struct{}, 1)}
}

// Append appends p, with others gathered at the same time when the committer runs, and returns its
// result once it is committed. When ctx ends first the caller gets ctx's error and the event may or may
// not be stored (it may already be in a transaction); an event is never reported stored unless its
// transaction committed.
func (c *committer) Append(ctx context.Context, p store.Pending) (store.Result, error) {
	c.mu.Lock()
	if !c.running || c.cfg.MaxEvents <= 1 {
		c.mu.Unlock()
		return appendOne(ctx, c.st, p)
	}
	cl := &call{ctx: ctx, p: p, done: make(chan struct{})}
	c.queue = append(c.queue, cl)
	signal(c.wake)
	if len(c.queue) >= c.cfg.MaxEvents {
		signal(c.full)
	}
	c.mu.Unlock()
	select {
	case <-cl.done:
		return cl.res, cl.err
	case <-ctx.Done():
		return store.Result{}, ctx.Err()
	}
}

func appendOne(ctx context.Context, st store.Store, p store.Pending) (store.Result, error) {
	res, err := st.Append(ctx, []store.Pending{p})
	if err != nil {
		return store.Result{}, err
	}
	return res[0], nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run commits gathered batches until ctx ends, then commits everything it accepted before returning
// (the drain), after which calls are appended one by one.
func (c *committer) Run(ctx context.Context) error {
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	defer c.drain()
	gathered := false // the last batch held more than one call: callers are arriving together
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		}
		for range 1 << 20 { // bounded: each round takes at least one call, or ends the loop
			if ctx.Err() != nil {
				return nil
			}
			if gathered && c.cfg.Window > 0 {
				c.waitFull(ctx)
			}
			batch := c.take()
			if len(batch) == 0 {
				gathered = false // nothing came within the window: the next call, alone, goes at once
				break
			}
			gathered = len(batch) > 1
			c.commit(batch)
		}
	}
}

// waitFull waits until the queue holds a full batch, the window has passed, or ctx ends.
func (c *committer) waitFull(ctx context.Context) {
	c.mu.Lock()
	n := len(c.queue)
	c.mu.Unlock()
	if n >= c.cfg.MaxEvents {
		return
	}
	t := time.NewTimer(c.cfg.Window)
	defer t.Stop()
	select {
	case <-c.full:
	case <-t.C:
	case <-ctx.Done():
	}
}

// take removes up to MaxEvents calls from the head of the queue.
func (c *committer) take() []*call {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), c.cfg.MaxEvents)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil // let the backing array go
	}
	// Stale signals would make the next wait end early; the queue's state is read again anyway.
	select {
	case <-c.full:
	default:
	}
	return batch
}

// drain stops accepting calls and commits those accepted.
func (c *committer) drain() {
	c.mu.Lock()
	c.running = false
	rest := c.queue
	c.queue = nil
	c.mu.Unlock()
	for len(rest) > 0 {
		n := min(len(rest), c.cfg.MaxEvents)
		c.commit(rest[:n])
		rest = rest[n:]
	}
}

// commit appends batch in one transaction and answers every call. A call whose caller has gone is left
// out (it was answered with its context's error and never stored). When the transaction fails, the
// batch is split in halves and each half tried on its own, down to single calls, so that an event the
// database refuses fails alone; an outage fails the whole batch at once instead of retrying each event
// against a database that is not there.
func (c *committer) commit(batch []*call) {
	live := batch[:0:0]
	for _, cl := range batch {
		if err := cl.ctx.Err(); err != nil {
			cl.err = err
			close(cl.done)
			continue
		}
		live = append(live, cl)
	}
	if len(live) == 0 {
		return
	}
	answered := false
	defer func() {
		// A panic in the store must not leave callers waiting: they learn it failed (their events may
		// or may not be stored; nothing is reported stored), then the platform restarts the worker.
		if !answered {
			for _, cl := range live {
				cl.err = errs.New(errs.KindInternal, "the audit event could not be appended")
				close(cl.done)
			}
		}
	}()
	ps := make([]store.Pending, len(live))
	for i, cl := range live {
		ps[i] = cl.p
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	res, err := c.st.Append(ctx, ps)
	cancel()
	if err != nil && len(live) > 1 && retryable(err) {
		c.log.Warn("audit group commit failed; retrying the batch in halves", "events", len(live), "error", err.Error())
		answered = true
		half := len(live) / 2
		c.commit(live[:half])
		c.commit(live[half:])
		return
	}
	for i, cl := range live {
		if err != nil {
			cl.err = err
		} else {
			cl.res = res[i]
		}
		close(cl.done)
	}
	answered = true
}

// retryable reports whether a failed batch is worth splitting: not when the database is unavailable
// (down or busy) or the transaction ran out of time, which smaller batches would only repeat.
func retryable(err error) bool {
	return errs.KindOf(err) != errs.KindUnavailable && !db.Down(err) && !errors.Is(err, context.DeadlineExceeded)
}
