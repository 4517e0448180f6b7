package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/testutil"
)

// recorder is a commit function over ints: it answers each input with its double, records every batch
// it was handed, fails a batch holding a negative input (as a database refuses one bad row and rolls
// back the whole transaction), and holds a batch while gate is closed.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	gate    chan struct{} // nil: never held
	fail    error         // when set, every batch fails with it
}

func (r *recorder) commit(ctx context.Context, in []int) ([]int, error) {
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(in))
	gate, fail := r.gate, r.fail
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	out := make([]int, len(in))
	for i, v := range in {
		if v < 0 {
			return nil, errs.Invalid("input %d refused", v)
		}
		out[i] = 2 * v
	}
	return out, nil
}

func (r *recorder) seen() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func splitUnlessUnavailable(err error) bool { return errs.KindOf(err) != errs.KindUnavailable }

type answer struct {
	out int
	err error
}

// running starts c's worker and stops it (waiting for the drain) at the end of the test.
func running(t *testing.T, c *Committer[int, int]) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, "the committer runs", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.running
	})
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
}

// queueBehindPlug holds the worker in the commit of one call (the plug), queues ins behind it and
// releases the plug once all of them wait: they then form the next batch, deterministically.
func queueBehindPlug(t *testing.T, c *Committer[int, int], r *recorder, ins []int) []answer {
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	plug := make(chan answer, 1)
	go func() { v, err := c.Do(context.Background(), 1000); plug <- answer{v, err} }()
	testutil.Eventually(t, 5*time.Second, "the plug is being committed", func() bool { return len(r.seen()) == 1 })
	answers := make([]answer, len(ins))
	var wg sync.WaitGroup
	for i, v := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.Do(context.Background(), v)
			answers[i] = answer{out, err}
		}()
	}
	testutil.Eventually(t, 5*time.Second, "every call is queued", func() bool { return c.Queued() == len(ins) })
	r.mu.Lock()
	r.gate = nil
	r.mu.Unlock()
	close(gate)
	if a := <-plug; a.err != nil || a.out != 2000 {
		t.Fatalf("plug: %+v", a)
	}
	wg.Wait()
	return answers
}

func TestConcurrentCallsShareOneCommitAndGetTheirOwnResults(t *testing.T) {
	r := &recorder{}
	var mu sync.Mutex
	var observed []int
	c := New("test", Config{MaxBatch: 64, Window: time.Millisecond, Observe: func(n int) { mu.Lock(); observed = append(observed, n); mu.Unlock() }},
		r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	ins := make([]int, 40)
	for i := range ins {
		ins[i] = i + 1
	}
	answers := queueBehindPlug(t, c, r, ins)
	for i, a := range answers {
		if a.err != nil || a.out != 2*ins[i] {
			t.Fatalf("call %d: %+v, want %d", i, a, 2*ins[i])
		}
	}
	if got := r.seen(); len(got) != 2 || len(got[1]) != len(ins) {
		t.Fatalf("batches %v: want the plug, then all %d calls in one", got, len(ins))
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(observed, []int{1, len(ins)}) {
		t.Fatalf("observed batch sizes %v, want [1 %d]", observed, len(ins))
	}
}

func TestBatchesAreBoundedByMaxBatch(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 8, Window: time.Millisecond}, r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	ins := make([]int, 20)
	for i := range ins {
		ins[i] = i
	}
	answers := queueBehindPlug(t, c, r, ins)
	for i, a := range answers {
		if a.err != nil || a.out != 2*ins[i] {
			t.Fatalf("call %d: %+v", i, a)
		}
	}
	for _, b := range r.seen() {
		if len(b) > 8 {
			t.Fatalf("a batch of %d calls, above MaxBatch 8", len(b))
		}
	}
}

// One input the commit refuses fails alone: the batch is split down to it, every other call commits.
func TestOneRefusedInputFailsAlone(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64}, r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	ins := []int{1, 2, 3, 4, -5, 6, 7, 8, 9}
	answers := queueBehindPlug(t, c, r, ins)
	for i, a := range answers {
		if ins[i] < 0 {
			if errs.KindOf(a.err) != errs.KindInvalid {
				t.Fatalf("the refused input: %+v, want its own error", a)
			}
			continue
		}
		if a.err != nil || a.out != 2*ins[i] {
			t.Fatalf("call %d (%d) failed with the refused one: %+v", i, ins[i], a)
		}
	}
}

// An outage fails the whole batch once: splitting would only ask a database that is not there again.
func TestAnOutageFailsTheBatchWithoutSplitting(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64}, r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	outage := errs.New(errs.KindUnavailable, "database unavailable")
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	plug := make(chan error, 1)
	go func() { _, err := c.Do(context.Background(), 1); plug <- err }()
	testutil.Eventually(t, 5*time.Second, "the plug is being committed", func() bool { return len(r.seen()) == 1 })
	results := make(chan error, 10)
	for i := range 10 {
		go func() { _, err := c.Do(context.Background(), i); results <- err }()
	}
	testutil.Eventually(t, 5*time.Second, "every call is queued", func() bool { return c.Queued() == 10 })
	r.mu.Lock()
	r.gate, r.fail = nil, outage
	r.mu.Unlock()
	close(gate)
	<-plug
	for range 10 {
		if err := <-results; !errors.Is(err, outage) {
			t.Fatalf("call during an outage: %v", err)
		}
	}
	if got := r.seen(); len(got) != 2 {
		t.Fatalf("batches %v: an outage must not be retried in halves", got)
	}
}

// Without the worker each call commits alone on the caller's context: correctness never depends on Run.
func TestWithoutTheWorkerEachCallCommitsAlone(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64}, r.commit, splitUnlessUnavailable, quiet())
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := c.Do(context.Background(), i); err != nil || out != 2*i {
				t.Errorf("call %d: %d, %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	for _, b := range r.seen() {
		if len(b) != 1 {
			t.Fatalf("batch %v without the worker", b)
		}
	}
}

// A caller that has gone before its batch is committed is left out of it: it was answered with its
// context's error, so its input must not be committed behind its back.
func TestACallerThatLeftIsNotCommitted(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64}, r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	go func() { _, _ = c.Do(context.Background(), 1) }()
	testutil.Eventually(t, 5*time.Second, "the plug is being committed", func() bool { return len(r.seen()) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() { _, err := c.Do(ctx, 77); left <- err }()
	stays := make(chan answer, 1)
	go func() { v, err := c.Do(context.Background(), 3); stays <- answer{v, err} }()
	testutil.Eventually(t, 5*time.Second, "both calls are queued", func() bool { return c.Queued() == 2 })
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left: %v", err)
	}
	r.mu.Lock()
	r.gate = nil
	r.mu.Unlock()
	close(gate)
	if a := <-stays; a.err != nil || a.out != 6 {
		t.Fatalf("the caller that stayed: %+v", a)
	}
	for _, b := range r.seen() {
		if slices.Contains(b, 77) {
			t.Fatalf("batches %v: the input of a caller that left was committed", r.seen())
		}
	}
}

// Stopping the worker commits what it accepted (the drain), and calls after that commit alone.
func TestStopDrainsTheQueue(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64}, r.commit, splitUnlessUnavailable, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, "the committer runs", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.running })
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	plug := make(chan error, 1)
	go func() { _, err := c.Do(context.Background(), 1000); plug <- err }()
	testutil.Eventually(t, 5*time.Second, "the plug is being committed", func() bool { return len(r.seen()) == 1 })
	results := make(chan answer, 6)
	for i := range 6 {
		go func() { v, err := c.Do(context.Background(), i); results <- answer{v, err} }()
	}
	testutil.Eventually(t, 5*time.Second, "calls wait behind the plug", func() bool { return c.Queued() == 6 })
	cancel()
	r.mu.Lock()
	r.gate = nil
	r.mu.Unlock()
	close(gate)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := <-plug; err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if a := <-results; a.err != nil {
			t.Fatalf("a call accepted before the stop: %+v", a)
		}
	}
	if out, err := c.Do(context.Background(), 21); err != nil || out != 42 {
		t.Fatalf("a call after the stop: %d, %v", out, err)
	}
}

// A panicking commit answers its callers with an error (nothing reported committed) instead of leaving
// them waiting, and goes on to the worker's supervisor.
func TestAPanickingCommitAnswersItsCallers(t *testing.T) {
	var mu sync.Mutex
	panics := true
	commit := func(ctx context.Context, in []int) ([]int, error) {
		mu.Lock()
		p := panics
		mu.Unlock()
		if p {
			panic(fmt.Sprint("boom ", len(in)))
		}
		return in, nil
	}
	c := New("test", Config{MaxBatch: 64}, commit, nil, quiet())
	c.mu.Lock()
	c.running = true // accepting, as Run would
	c.mu.Unlock()
	got := make(chan error, 1)
	go func() { _, err := c.Do(context.Background(), 1); got <- err }()
	testutil.Eventually(t, 5*time.Second, "the call is queued", func() bool { return c.Queued() == 1 })
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		c.commitBatch(c.take())
	}()
	if r := <-recovered; r == nil {
		t.Fatal("the panic did not go on to the supervisor")
	}
	if err := <-got; errs.KindOf(err) != errs.KindInternal {
		t.Fatalf("caller of a panicking commit: %v", err)
	}
}

// With Concurrency 2 a second batch commits while the first is still committing (a database whose
// commit waits on a round trip and a flush does two at once), and every call gets its own result.
func TestConcurrentBatchesCommitAtOnce(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64, Concurrency: 2}, r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	results := make(chan answer, 2)
	go func() { v, err := c.Do(context.Background(), 1); results <- answer{v, err} }()
	testutil.Eventually(t, 5*time.Second, "the first batch is committing", func() bool { return len(r.seen()) == 1 })
	go func() { v, err := c.Do(context.Background(), 2); results <- answer{v, err} }()
	testutil.Eventually(t, 5*time.Second, "a second batch commits beside the first", func() bool { return len(r.seen()) == 2 })
	r.mu.Lock()
	r.gate = nil
	r.mu.Unlock()
	close(gate)
	got := map[int]bool{}
	for range 2 {
		a := <-results
		if a.err != nil {
			t.Fatal(a.err)
		}
		got[a.out] = true
	}
	if !got[2] || !got[4] {
		t.Fatalf("answers %v, want 2 and 4", got)
	}
}

// A panic in one of several loops stops Run with that panic (for the supervisor to restart it) after
// answering every caller.
func TestAPanicInAConcurrentLoopStopsRun(t *testing.T) {
	commit := func(ctx context.Context, in []int) ([]int, error) { panic("boom") }
	c := New("test", Config{MaxBatch: 64, Concurrency: 3}, commit, nil, quiet())
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_ = c.Run(context.Background())
	}()
	testutil.Eventually(t, 5*time.Second, "the committer runs", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.running })
	if _, err := c.Do(context.Background(), 1); errs.KindOf(err) != errs.KindInternal {
		t.Fatalf("caller of a panicking commit: %v", err)
	}
	select {
	case r := <-recovered:
		if r == nil {
			t.Fatal("Run returned without the panic")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after a loop panicked")
	}
}

// Running is what callers outside the package wait on before relying on their calls being queued: false
// before Run, true while it runs, false again once Run has drained.
func TestRunningFollowsTheWorker(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64}, r.commit, nil, quiet())
	if c.Running() {
		t.Fatal("running before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, "Running reports the worker", c.Running)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if c.Running() {
		t.Fatal("running after Run returned")
	}
}

// After a batch of n, the committer waits for the next to fill only until it holds n calls: callers
// answered together come back together, and waiting out the window for more would only delay them. Fewer
// than n still wait for the window.
func TestABatchAsLargeAsTheLastGoesWithoutWaitingTheWindow(t *testing.T) {
	r := &recorder{}
	c := New("test", Config{MaxBatch: 64, Window: time.Hour}, r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	queueBehindPlug(t, c, r, []int{1, 2, 3, 4}) // the worker now waits for a batch of 4
	done := make(chan answer, 4)
	for v := range 4 {
		go func() { out, err := c.Do(context.Background(), 10+v); done <- answer{out, err} }()
	}
	for range 4 {
		select {
		case a := <-done:
			if a.err != nil {
				t.Fatal(a.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("4 calls after a batch of 4 still wait (batches %v): the window is an hour", r.seen())
		}
	}
	if got := r.seen(); len(got) != 3 || len(got[2]) != 4 {
		t.Fatalf("batches %v: want the plug, 4, then the 4 new calls together", got)
	}
}

func TestFewerCallsThanTheLastBatchWaitForTheWindow(t *testing.T) {
	r := &recorder{}
	const window = 300 * time.Millisecond
	c := New("test", Config{MaxBatch: 64, Window: window}, r.commit, splitUnlessUnavailable, quiet())
	running(t, c)
	queueBehindPlug(t, c, r, []int{1, 2, 3, 4})
	start := time.Now()
	var wg sync.WaitGroup
	for v := range 2 {
		wg.Go(func() {
			if _, err := c.Do(context.Background(), 10+v); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took < window/2 {
		t.Fatalf("2 calls after a batch of 4 committed after %v: they should wait for the window (%v) to gather", took, window)
	}
}
