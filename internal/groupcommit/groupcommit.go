// Package groupcommit gathers concurrent calls into batches that one function commits together: one
// transaction (one fsync on SQLite, one commit round trip on PostgreSQL) for many callers, each answered
// with its own result only after that commit.
//
// A Committer runs as a background worker (Run). While it does not run (before the platform starts it,
// after it stopped, or in a process that serves without workers) each call is committed on its own, by
// the same function, so callers never depend on the worker for correctness, only for throughput.
package groupcommit

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/tracing"
)

// Config bounds how calls are gathered.
type Config struct {
	// MaxBatch is the most calls one commit carries; 1 (or less) commits each call on its own.
	MaxBatch int
	// Window is how long the committer waits for a batch to fill while calls arrive together, that is
	// after a batch of more than one, until a window passes with no call; calls that come one at a time
	// are committed at once. A batch is full, and goes without waiting longer, once it holds as many
	// calls as the batch before it (or MaxBatch): callers that were answered together come back
	// together, so waiting for more than came last time only delays them.
	Window time.Duration
	// Timeout bounds one commit, whoever waits on it (default 30 s). The commit does not run on any
	// caller's context: one caller going away must not fail the others' commit.
	Timeout time.Duration
	// Concurrency is how many batches may commit at once (default 1). More than one suits a database
	// whose commit waits on a round trip and a log flush (PostgreSQL), not one with a single writer.
	Concurrency int
	// Observe, when set, is told the size of every batch a commit is attempted for (a failed batch's
	// halves included), for a metric.
	Observe func(calls int)
}

// Func commits a batch and returns one result per input, in order, or one error for the whole batch
// (then nothing of it may be committed: the batch is one transaction).
type Func[In, Out any] func(ctx context.Context, batch []In) ([]Out, error)

// Committer gathers calls to one Func.
type Committer[In, Out any] struct {
	name   string
	cfg    Config
	commit Func[In, Out]
	// split reports whether a failed batch is worth committing again in halves, so that the one input
	// the database refuses fails alone; not for an outage, which smaller batches would only repeat.
	split func(error) bool
	log   *slog.Logger
	// tracer makes the span of each commit (see commitSpan).
	tracer trace.Tracer

	mu      sync.Mutex
	running bool
	// queue holds accepted calls in arrival order. It is not bounded here: each call is a request
	// waiting for its answer, so the server's limits on concurrent requests bound it.
	queue []*call[In, Out]
	wake  chan struct{} // the queue became non-empty
	full  chan struct{} // the queue reached want
	// want is the queue length that ends a wait for the batch to fill: the size of the batch before
	// (at most MaxBatch) while a loop waits, MaxBatch otherwise.
	want int
}

type call[In, Out any] struct {
	ctx  context.Context
	in   In
	out  Out
	err  error
	done chan struct{}
}

// New returns a committer of commit named name (in log lines). split decides which failed batches are
// split in halves and retried (see Committer.split); nil never splits.
func New[In, Out any](name string, cfg Config, commit Func[In, Out], split func(error) bool, log *slog.Logger) *Committer[In, Out] {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if split == nil {
		split = func(error) bool { return false }
	}
	return &Committer[In, Out]{name: name, cfg: cfg, commit: commit, split: split, log: log,
		want: cfg.MaxBatch, wake: make(chan struct{}, 1), full: make(chan struct{}, 1), tracer: tracing.Tracer("github.com/sergas/core/internal/groupcommit")}
}

// Do commits in, with others gathered at the same time when the committer runs, and returns its result
// once that commit is done. When ctx ends first the caller gets ctx's error and in may or may not be
// committed (it may already be in a transaction); a result is never returned unless its commit
// succeeded.
func (c *Committer[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	c.mu.Lock()
	if !c.running || c.cfg.MaxBatch <= 1 {
		c.mu.Unlock()
		return c.one(ctx, in)
	}
	cl := &call[In, Out]{ctx: ctx, in: in, done: make(chan struct{})}
	c.queue = append(c.queue, cl)
	signal(c.wake)
	if len(c.queue) >= c.want {
		signal(c.full)
	}
	c.mu.Unlock()
	select {
	case <-cl.done:
		return cl.out, cl.err
	case <-ctx.Done():
		var zero Out
		return zero, ctx.Err()
	}
}

// Queued is how many accepted calls wait for a batch (for tests and metrics).
func (c *Committer[In, Out]) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Running reports whether the worker accepts calls for batches: from when Run starts until its drain
// begins. Calls made while it is false commit alone. For tests that must know their calls will queue,
// and for health reports.
func (c *Committer[In, Out]) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// one commits in alone, on the caller's context (no one else shares the transaction).
func (c *Committer[In, Out]) one(ctx context.Context, in In) (Out, error) {
	var zero Out
	ctx, span := c.tracer.Start(ctx, "group commit "+c.name, trace.WithAttributes(attribute.Int("sergas.batch.calls", 1)))
	out, err := c.commit(ctx, []In{in})
	endCommitSpan(span, err)
	if err != nil {
		return zero, err
	}
	if len(out) != 1 {
		return zero, errs.New(errs.KindInternal, "%s: commit returned %d results for 1 input", c.name, len(out))
	}
	return out[0], nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run commits gathered batches until ctx ends, then commits everything it accepted before returning
// (the drain), after which calls are committed one by one. With Concurrency above 1, that many batches
// commit at once, each gathered while the others commit.
func (c *Committer[In, Out]) Run(ctx context.Context) error {
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	defer c.drain()
	n := max(1, c.cfg.Concurrency)
	if n == 1 {
		c.loop(ctx)
		return nil
	}
	// A panic in one loop stops them all and goes on from Run, to the worker's supervisor, after the
	// drain: no loop may die alone and leave its callers waiting.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	panics := make(chan any, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					panics <- r
					cancel()
				}
			}()
			c.loop(ctx)
		}()
	}
	wg.Wait()
	select {
	case r := <-panics:
		panic(r)
	default:
	}
	return nil
}

// loop takes and commits batches until ctx ends.
func (c *Committer[In, Out]) loop(ctx context.Context) {
	last := 0 // calls in the last batch: more than one when callers are arriving together
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		for range 1 << 20 { // bounded: each round takes at least one call, or ends the loop
			if ctx.Err() != nil {
				return
			}
			if last > 1 && c.cfg.Window > 0 {
				c.waitFull(ctx, last)
			}
			batch := c.take()
			last = len(batch)
			if last == 0 {
				break // nothing came within the window: the next call, alone, goes at once
			}
			if len(c.wake) == 0 && c.Queued() > 0 {
				signal(c.wake) // calls left behind: another loop may take them while this one commits
			}
			c.commitBatch(batch)
		}
	}
}

// waitFull waits until the queue holds a full batch (as many calls as the last batch, at most MaxBatch),
// the window has passed, or ctx ends. With several loops (Concurrency) the latest waiter sets the mark.
func (c *Committer[In, Out]) waitFull(ctx context.Context, last int) {
	want := min(last, c.cfg.MaxBatch)
	c.mu.Lock()
	c.want = want
	n := len(c.queue)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.want = c.cfg.MaxBatch
		c.mu.Unlock()
	}()
	if n >= want {
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

// take removes up to MaxBatch calls from the head of the queue.
func (c *Committer[In, Out]) take() []*call[In, Out] {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), c.cfg.MaxBatch)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil // let the backing array go
	}
	// A stale signal would end the next wait early; the queue's state is read again anyway.
	select {
	case <-c.full:
	default:
	}
	return batch
}

// drain stops accepting calls and commits those accepted.
func (c *Committer[In, Out]) drain() {
	c.mu.Lock()
	c.running = false
	rest := c.queue
	c.queue = nil
	c.mu.Unlock()
	for len(rest) > 0 {
		n := min(len(rest), c.cfg.MaxBatch)
		c.commitBatch(rest[:n])
		rest = rest[n:]
	}
}

// commitBatch commits batch and answers every call. A call whose caller has gone is left out (it was
// answered with its context's error and never committed). When the commit fails and split allows, the
// batch is split in halves and each half tried on its own, down to single calls, so that an input the
// database refuses fails alone; an outage fails the whole batch at once instead of retrying each input
// against a database that is not there.
func (c *Committer[In, Out]) commitBatch(batch []*call[In, Out]) {
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
	if c.cfg.Observe != nil {
		c.cfg.Observe(len(live))
	}
	answered := false
	defer func() {
		// A panic in the commit must not leave callers waiting: they learn it failed, then the panic goes
		// on to the worker's supervisor, which restarts the worker.
		if !answered {
			for _, cl := range live {
				cl.err = errs.New(errs.KindInternal, "%s: the commit failed", c.name)
				close(cl.done)
			}
		}
	}()
	ins := make([]In, len(live))
	for i, cl := range live {
		ins[i] = cl.in
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	ctx, span := c.commitSpan(ctx, live)
	outs, err := c.commit(ctx, ins)
	endCommitSpan(span, err)
	cancel()
	if err == nil && len(outs) != len(live) {
		err = errs.New(errs.KindInternal, "%s: commit returned %d results for %d inputs", c.name, len(outs), len(live))
	}
	if err != nil && len(live) > 1 && c.split(err) {
		c.log.Warn("group commit failed; retrying the batch in halves", "committer", c.name, "calls", len(live), "error", err.Error())
		answered = true
		half := len(live) / 2
		c.commitBatch(live[:half])
		c.commitBatch(live[half:])
		return
	}
	for i, cl := range live {
		if err != nil {
			cl.err = err
		} else {
			cl.out = outs[i]
		}
		close(cl.done)
	}
	answered = true
}

// commitSpan starts the span of a batch's commit, whose store calls are its children. The batch runs for
// many requests at once: the span is the child of the first caller's span (so that its trace shows the
// commit) and links to every caller's span, so that no request loses sight of the commit it waited on.
func (c *Committer[In, Out]) commitSpan(ctx context.Context, live []*call[In, Out]) (context.Context, trace.Span) {
	// Without an exporter no span records: skip the links (an allocation per call) and the span.
	if !slices.ContainsFunc(live, func(cl *call[In, Out]) bool { return trace.SpanFromContext(cl.ctx).IsRecording() }) {
		return ctx, trace.SpanFromContext(ctx)
	}
	links := make([]trace.Link, 0, len(live))
	var first trace.SpanContext
	for _, cl := range live {
		if sc := trace.SpanContextFromContext(cl.ctx); sc.IsValid() {
			if !first.IsValid() {
				first = sc
			}
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if first.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, first)
	}
	return c.tracer.Start(ctx, "group commit "+c.name, trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("sergas.batch.calls", len(live))))
}

func endCommitSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "commit failed")
	}
	span.End()
}
