package webhook

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/groupcommit"
	"github.com/sergas/core/internal/tracing"
	"github.com/sergas/core/services/webhook/store"
)

// pushSettleTimeout bounds the transaction that records a batch's outcomes; it runs even while the
// service stops, so that what was sent is recorded (otherwise its lease simply expires and it is sent
// again).
const pushSettleTimeout = 10 * time.Second

// pusher is the push delivery of one server: its workers share the clients (and their connections),
// the cached subscriptions and the consumer name.
type pusher struct {
	s        *Server
	cfg      PushConfig
	consumer string
	clients  pushClients
	cache    pushTargets
	// turn moves the subscription each pass starts with, so that no subscription is always served last.
	turn atomic.Uint64
	// idleAt is when a worker last finished a pass that found nothing (UnixNano): a worker whose poll
	// timer fires soon after skips its own pass, so that an idle replica looks about once per poll
	// interval however many workers it runs (each look is a write transaction on SQLite).
	idleAt atomic.Int64
	// spare holds what a worker claimed for the others (pushSpare); free counts the workers' free
	// request slots.
	spare    *pushSpare
	free     atomic.Int64
	claiming sync.Mutex
	drained  atomic.Bool  // the last claim found fewer due deliveries than it asked for
	reserved atomic.Int64 // deliveries claims under way lease for the other workers
	// settles records the batches' outcomes, several workers' at once (newPushSettles).
	settles *groupcommit.Committer[pushBatchOutcome, struct{}]
}

// pushWorkers are the push delivery workers (PushConfig), on every replica: the store hands each
// delivery to one of them at a time, whichever replica it runs on.
func (s *Server) pushWorkers() []app.Worker {
	if s.deliveries == nil || s.cfg.Push.Workers <= 0 || s.cfg.Push.BatchSize <= 0 {
		return nil
	}
	p := s.newPusher()
	ws := make([]app.Worker, s.cfg.Push.Workers)
	for i := range ws {
		ws[i] = app.Worker{Name: fmt.Sprintf("webhook.push.%d", i+1), Run: p.newWorker().run}
	}
	ws = append(ws, app.Worker{Name: "webhook.push.settle", Run: p.settles.Run})
	return ws
}

// newPusher is the push delivery of s, for its configured workers (pushWorkers makes them).
func (s *Server) newPusher() *pusher {
	p := &pusher{s: s, cfg: s.cfg.Push, consumer: store.PushConsumerPrefix + replicaName(),
		clients: newPushClients(s.cfg.Push.Workers * s.cfg.Push.BatchSize), spare: newPushSpare()}
	p.settles = p.newPushSettles()
	p.free.Store(int64(s.cfg.Push.Workers * s.cfg.Push.BatchSize))
	p.drained.Store(true) // no backlog known: one claim at a time
	return p
}

// replicaName names this process in attempt histories: the host name (a pod's name) and the process id,
// cut to what a consumer name may hold.
func replicaName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "replica"
	}
	h = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return -1
		}
		return r
	}, h)
	name := fmt.Sprintf("%s/%d", h, os.Getpid())
	return name[:min(len(name), maxConsumerName-len("push/"))]
}

// pushWorker is one worker: it has at most BatchSize requests in flight (slots holds a token per free
// one).
type pushWorker struct {
	p     *pusher
	slots chan struct{}
	// freed is signalled when a request of an earlier batch ends, giving back its slot.
	freed chan struct{}
	// late counts the batches whose last requests are still running after the batch timeout, and the
	// settles still recording a batch's outcomes.
	late sync.WaitGroup
	// settling holds a token while a settle of this worker runs in the background (settleAsync).
	settling chan struct{}
}

func (p *pusher) newWorker() *pushWorker {
	w := &pushWorker{p: p, slots: make(chan struct{}, p.cfg.BatchSize), freed: make(chan struct{}, 1), settling: make(chan struct{}, 1)}
	for range p.cfg.BatchSize {
		w.slots <- struct{}{}
	}
	return w
}

// run delivers until ctx ends, then waits for its requests still in flight (each ends by its timeout)
// and records them. It looks for work at once after a batch, at each wake-up (events stored on this
// replica, a subscription resumed), when one of its late requests ends, and otherwise every poll
// interval (deliveries of other replicas, retries come due, expired leases).
func (w *pushWorker) run(ctx context.Context) error {
	defer func() {
		w.sendSpare(ctx)
		w.late.Wait()
		// The endpoints' keep-alive connections would otherwise stay open, with their goroutines, until
		// the idle timeout. Only idle ones close: the other workers' requests in flight go on, and a
		// worker restarted after an error connects again.
		w.p.clients.close()
	}()
	st := w.p.s.consume()
	news := true // the first pass looks at once
	for {
		woken, spared := st.wake.wait(), w.p.spare.added.wait()
		if ctx.Err() != nil {
			return nil
		}
		poll := time.Duration(st.pollInterval.Load())
		if news || time.Since(time.Unix(0, w.p.idleAt.Load())) >= poll/2 {
			sent, more, err := w.pass(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err // the platform restarts the worker after a backoff
			}
			if more {
				continue
			}
			if !sent {
				w.p.idleAt.Store(time.Now().UnixNano())
			}
			// Sent what was due: the next look waits for news (below), as after a pass that found
			// nothing. Looking again at once found nothing most of the time under a steady stream (the
			// other workers had claimed it): 3,500 empty claims for 1,500 full ones on PostgreSQL.
		}
		// Jittered, so that the workers of a replica do not all look at once.
		t := time.NewTimer(poll/2 + rand.N(poll))
		news = true
		select {
		case <-ctx.Done():
		case <-woken:
		case <-spared:
		case <-w.freed:
		case <-t.C:
			news = false
		}
		t.Stop()
	}
}

// pass offers each active push subscription, in turn, one batch; it reports whether it sent any, and
// whether more may be due now (a batch came from spare, or a claim found all it asked for).
func (w *pushWorker) pass(ctx context.Context) (sent, more bool, err error) {
	targets, err := w.p.targets(ctx)
	if err != nil {
		return false, false, err
	}
	w.p.spare.keep(targets)
	if len(targets) == 0 {
		return false, false, nil
	}
	first := int(w.p.turn.Add(1) % uint64(len(targets)))
	for i := range targets {
		room := len(w.slots) // only this worker takes slots: at least this many are free
		if room == 0 || ctx.Err() != nil {
			return sent, false, nil // w.freed says when a slot is free again
		}
		t := targets[(first+i)%len(targets)]
		got, drained, err := w.take(ctx, t, room)
		if err != nil {
			return sent, more, err
		}
		more = more || !drained
		if len(got) > 0 {
			w.batch(ctx, w.p.current(ctx, t), got)
			sent = true
		}
	}
	return sent, more, nil
}

// take returns up to room deliveries of t for this worker: spare ones when there are (no claim then),
// otherwise a claim, which also leases what the other workers' free slots would take (left in spare
// for them). drained reports a claim that found fewer due deliveries than it asked for.
func (w *pushWorker) take(ctx context.Context, t *pushTarget, room int) (got []store.Claimed, drained bool, err error) {
	if got = w.p.spare.take(t.sub.ID, room); len(got) > 0 {
		return got, false, nil
	}
	// While the last claim found everything that was due, one claim at a time: workers woken together
	// by one ingest then take from what the first claimed for them instead of each claiming (most of
	// those claims found nothing), and a worker that finds another's claim under way looks again when it
	// leaves deliveries in spare, or at the next news. While claims come back full (a backlog), workers
	// claim side by side: one at a time bounded the rate by one claim's latency (SQLite, where a claim
	// waits for the one writer: push at saturation 4,400 -> 3,900/s, the backlog growing).
	if w.p.drained.Load() {
		if !w.p.claiming.TryLock() {
			return nil, true, nil
		}
		defer w.p.claiming.Unlock()
	}
	// For the others: their free slots, less what spare holds and what claims under way lease for them
	// (claims side by side would otherwise each lease the same slots' share).
	extra := max(0, int(w.p.free.Load())-room-w.p.spare.held()-int(w.p.reserved.Load()))
	w.p.reserved.Add(int64(extra))
	defer w.p.reserved.Add(-int64(extra))
	want := w.p.s.claimLimit(room+extra, maxClaimBytes)
	claimed, err := w.p.claim(ctx, t, want)
	if err != nil {
		return nil, false, err
	}
	drained = len(claimed) < want
	w.p.drained.Store(drained)
	k := min(len(claimed), room)
	w.p.spare.put(t, claimed[k:])
	return claimed[:k], drained, nil
}

// sendSpare sends what is left in spare, in batches, when the worker stops: it was leased to the
// pusher, and would otherwise wait for its lease to end.
func (w *pushWorker) sendSpare(ctx context.Context) {
	for {
		t, got := w.p.spare.any(w.p.cfg.BatchSize)
		if t == nil {
			return
		}
		if len(got) > 0 {
			w.batch(ctx, w.p.current(ctx, t), got)
		}
	}
}

// claim leases up to n due deliveries of t to the pusher.
func (p *pusher) claim(ctx context.Context, t *pushTarget, n int) ([]store.Claimed, error) {
	res, err := p.s.deliveries.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: t.sub.ID, Consumer: p.consumer,
		Now: p.s.now(), Limit: p.s.claimLimit(n, maxClaimBytes)})
	if errs.KindOf(err) == errs.KindNotFound {
		pushChanged() // deleted on another replica: read the subscriptions again
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	observeClaimed(res.Claimed)
	observeDeadLettered(res.DeadLettered)
	if len(res.DeadLettered) > 0 {
		p.s.wakeOutbox() // the claim queued their audit events
	}
	return res.Claimed, nil
}

// batch sends got (leased to the pusher) in parallel, each request bounded by the subscription's timeout,
// and waits for the answers until all have come or the batch timeout has passed since the claim: it
// records those in one settle and leaves the rest to finish (and be recorded together) on their own.
// Requests do not end with ctx: a stopping service lets them finish or time out.
func (w *pushWorker) batch(ctx context.Context, t *pushTarget, got []store.Claimed) {
	ctx, span := tracing.StartJob(ctx, "webhook push batch")
	defer span.End()
	deadline := time.NewTimer(w.p.cfg.BatchTimeout)
	defer deadline.Stop()
	results := make(chan pushOutcome, len(got))
	reqCtx := context.WithoutCancel(ctx)
	for _, c := range got {
		<-w.slots // free: the claim asked for at most the room left (a stopping worker's last batches may wait)
		w.p.free.Add(-1)
		go func() {
			rctx, cancel := context.WithTimeout(reqCtx, t.sub.Push.Timeout)
			o := w.p.send(rctx, t, c)
			cancel()
			results <- o
			w.slots <- struct{}{}
			w.p.free.Add(1)
			select {
			case w.freed <- struct{}{}:
			default:
			}
		}()
	}
	var done []pushOutcome
wait:
	for len(done) < len(got) {
		select {
		case o := <-results:
			done = append(done, o)
		case <-deadline.C:
			break wait
		}
	}
	w.settleAsync(ctx, t, done)
	if rest := len(got) - len(done); rest > 0 {
		w.late.Add(1)
		go func() {
			defer w.late.Done()
			late := make([]pushOutcome, 0, rest)
			for range rest {
				late = append(late, <-results)
			}
			w.p.record(ctx, pushBatchOutcome{t: t, outs: late})
		}()
	}
}
