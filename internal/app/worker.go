package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sergas/core/internal/db"
)

// Worker is one background job of a service: a group committer, a checkpoint signer, a refresher.
type Worker struct {
	// Name identifies the job in logs, in the restart metric and in the leader lock ("token.refresher").
	Name string
	// Run does the work until ctx is done. Returning nil before that means the job is finished; an
	// error or a panic restarts it after a backoff.
	Run func(ctx context.Context) error
	// SingleReplica jobs run on one replica at a time, the one the Background's Elector makes leader.
	SingleReplica bool
}

// Background is what a service runs besides serving RPCs.
type Background struct {
	Workers []Worker
	// Elector picks the replica that runs the SingleReplica workers (db.ElectorFor the service's
	// database); required when any worker is SingleReplica.
	Elector db.Elector
	// MinBackoff and MaxBackoff bound the delay before a failed worker restarts (defaults 500 ms and
	// 30 s); the delay doubles with each failure in a row and is jittered.
	MinBackoff, MaxBackoff time.Duration
}

// BackgroundService is a Service with background work. The platform starts the workers once the
// service's listener is open, stops them after in-flight RPCs have drained (which may wait on them) and
// before the service is closed, and restarts one that fails.
type BackgroundService interface {
	Background() Background
}

// backgroundOf returns svc's background work, none when it declares none.
func backgroundOf(svc Service) Background {
	if b, ok := svc.(BackgroundService); ok {
		return b.Background()
	}
	return Background{}
}

func (b Background) validate() error {
	seen := map[string]bool{}
	for _, w := range b.Workers {
		switch {
		case w.Name == "" || w.Run == nil:
			return errors.New("background worker without a name or a run function")
		case seen[w.Name]:
			return fmt.Errorf("background worker %q declared twice", w.Name)
		case w.SingleReplica && b.Elector == nil:
			return fmt.Errorf("background worker %q must run on one replica but the service names no elector", w.Name)
		}
		seen[w.Name] = true
	}
	return nil
}

var (
	restartsOnce sync.Once
	restarts     *prometheus.CounterVec
)

// workerRestarts is the process-wide restart counter, labelled only by worker name (names come from
// code, so the label set is fixed).
func workerRestarts() *prometheus.CounterVec {
	restartsOnce.Do(func() {
		restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sergas_worker_restarts_total",
			Help: "Background workers restarted after an error or a panic, by worker.",
		}, []string{"worker"})
		prometheus.MustRegister(restarts)
	})
	return restarts
}

// Workers is a started Background.
type Workers struct {
	log    *slog.Logger
	cancel context.CancelFunc
	mu     sync.Mutex
	// running holds the names of workers whose goroutine has not returned.
	running map[string]chan struct{}
}

// StartWorkers starts b's workers on a context of their own (cancelled by Stop, not by ctx's end, so
// that they outlive the drain of in-flight RPCs that may wait on them).
func StartWorkers(ctx context.Context, log *slog.Logger, b Background) (*Workers, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	if b.MinBackoff <= 0 {
		b.MinBackoff = 500 * time.Millisecond
	}
	if b.MaxBackoff < b.MinBackoff {
		b.MaxBackoff = max(30*time.Second, b.MinBackoff)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ws := &Workers{log: log, cancel: cancel, running: map[string]chan struct{}{}}
	for _, w := range b.Workers {
		done := make(chan struct{})
		ws.running[w.Name] = done
		workerRestarts().WithLabelValues(w.Name) // the series exists (at 0) before the first restart
		go func() {
			defer close(done)
			supervise(wctx, log, b, w)
		}()
	}
	return ws, nil
}

// Stop cancels the workers and waits up to timeout for them to return. It reports (and logs) the names
// of those still running: they are abandoned, and what they use may be closed under them.
func (ws *Workers) Stop(timeout time.Duration) []string {
	ws.cancel()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var late []string
	for name, done := range ws.running {
		select {
		case <-done:
			continue
		case <-deadline.C:
			// Expired: check the others without waiting.
			deadline.Reset(0)
		}
		select {
		case <-done:
		default:
			late = append(late, name)
			ws.log.Error("background worker did not stop in time; abandoning it", "worker", name, "timeout", timeout)
		}
	}
	return late
}

// supervise runs w until ctx is done: as leader when w is SingleReplica, restarting it with a jittered
// exponential backoff after an error or a panic.
func supervise(ctx context.Context, log *slog.Logger, b Background, w Worker) {
	failures := 0
	for {
		runCtx, release := ctx, func() {}
		if w.SingleReplica {
			lead, rel, err := b.Elector.Lead(ctx, w.Name)
			if err != nil {
				return // only when ctx is done
			}
			log.Info("background worker leads; starting", "worker", w.Name)
			runCtx, release = lead, rel
		}
		start := time.Now()
		err := runGuarded(runCtx, log, w)
		lost := ctx.Err() == nil && errors.Is(context.Cause(runCtx), db.ErrLeadershipLost)
		release()
		switch {
		case ctx.Err() != nil:
			return
		case lost:
			log.Warn("background worker lost leadership; stopped it and standing for election again", "worker", w.Name)
			continue
		case err == nil:
			log.Info("background worker finished", "worker", w.Name)
			return
		}
		// A run that lasted longer than the longest backoff was healthy: start the backoff over.
		if time.Since(start) >= b.MaxBackoff {
			failures = 0
		}
		d := backoff(b.MinBackoff, b.MaxBackoff, failures)
		failures++
		workerRestarts().WithLabelValues(w.Name).Inc()
		log.Error("background worker failed; restarting", "worker", w.Name, "error", err.Error(), "failures_in_a_row", failures, "retry_in", d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// runGuarded runs w, turning a panic into an error (logged with its stack) so that one faulty job cannot
// take the process down.
func runGuarded(ctx context.Context, log *slog.Logger, w Worker) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("background worker panicked", "worker", w.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return w.Run(ctx)
}

// backoff is the delay after the n-th failure in a row (from 0): min·2ⁿ capped at max, jittered over its
// upper half so that replicas failing together do not retry in step.
func backoff(minD, maxD time.Duration, n int) time.Duration {
	d := maxD
	if n < 30 && minD<<n < maxD {
		d = minD << n
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
