package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// countedClaims is a delivery store that counts the claims that found deliveries, and their sizes.
type countedClaims struct {
	store.DeliveryStore
	mu    sync.Mutex
	sizes []int
}

func (c *countedClaims) DeliveryClaim(ctx context.Context, p store.ClaimParams) (store.ClaimResult, error) {
	res, err := c.DeliveryStore.DeliveryClaim(ctx, p)
	if n := len(res.Claimed); n > 0 {
		c.mu.Lock()
		c.sizes = append(c.sizes, n)
		c.mu.Unlock()
	}
	return res, err
}

func (c *countedClaims) claims() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

// dueToPush makes a push subscription to an endpoint that passes each request to seen and answers 200,
// and n deliveries due for it; it returns the subscription's id.
func dueToPush(t *testing.T, r *pushRig, n int, seen func(*http.Request)) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		seen(req)
	}))
	t.Cleanup(ts.Close)
	sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, 5*time.Second)
	for range n {
		r.ingest(t)
	}
	return sub.GetId()
}

// deliverAll runs workers push workers on ds until n deliveries of sub are delivered, then stops them.
func deliverAll(t *testing.T, r *pushRig, ds store.DeliveryStore, workers int, sub string, n int) {
	t.Helper()
	r.srv.deliveries = ds
	stop := runPushWorkers(t, r, workers)
	defer stop()
	waitDelivered(t, r, sub, n)
}

// waitDelivered waits until n deliveries of subscription sub are recorded as delivered.
func waitDelivered(t *testing.T, r *pushRig, sub string, n int) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("%d deliveries recorded as delivered", n), func() bool {
		ds, err := r.ds.DeliveryList(t.Context(), store.DeliveryListParams{SubscriptionID: sub, Status: store.DeliveryDelivered, Limit: n + 1})
		return err == nil && len(ds) == n
	})
}

// runPushWorkers runs the server's push workers (WEBHOOK_NUM_WORKERS of the rig is 0, so that only
// these run) until the returned stop is called.
func runPushWorkers(t *testing.T, r *pushRig, workers int) (stop func()) {
	t.Helper()
	r.srv.cfg.Push.Workers = workers
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range r.srv.pushWorkers() {
		wg.Go(func() { _ = w.Run(ctx) })
	}
	return sync.OnceFunc(func() { cancel(); wg.Wait() })
}

// Six deliveries due at once for three workers with batches of two: the first worker to look claims all
// six (its room and the other two's) and the others take their batches from what it left them, so one
// claim finds deliveries, not three; every delivery arrives once and is recorded.
func TestPushWorkersShareOneClaim(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_NUM_WORKERS", "0", "WEBHOOK_BATCH_SIZE", "2")
		var mu sync.Mutex
		got := map[string]int{}
		sub := dueToPush(t, r, 6, func(req *http.Request) {
			mu.Lock()
			got[req.Header.Get("Webhook-Id")]++
			mu.Unlock()
		})
		counted := &countedClaims{DeliveryStore: r.ds}
		deliverAll(t, r, counted, 3, sub, 6)
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 6 {
			t.Errorf("%d deliveries arrived, want 6", len(got))
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("delivery %s arrived %d times", id, n)
			}
		}
		if c := counted.claims(); len(c) != 1 || c[0] != 6 {
			t.Errorf("claims that found deliveries: %v, want one of 6", c)
		}
	})
}

// What a worker claimed for the others and is still unsent when the workers stop goes out before they
// return, rather than waiting in the store for its lease to end: here the one running worker of two
// holds its own request while it stops, then sends the one it claimed for the other.
func TestStoppingPushWorkersSendWhatTheyClaimedForOthers(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_NUM_WORKERS", "0", "WEBHOOK_BATCH_SIZE", "1")
		arrived := make(chan string, 4)
		hold := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
			arrived <- req.Header.Get("Webhook-Id")
			<-hold
		}))
		defer ts.Close()
		defer func() {
			select {
			case <-hold:
			default:
				close(hold)
			}
		}()
		sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, 5*time.Second)
		r.ingest(t)
		r.ingest(t)
		r.srv.cfg.Push.Workers = 2
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { defer close(stopped); _ = r.srv.pushWorkers()[0].Run(ctx) }() // worker 2 never runs
		first := <-arrived
		cancel() // stopping while the first request is held; the second delivery waits in spare
		close(hold)
		select {
		case second := <-arrived:
			if second == first {
				t.Fatalf("delivery %s sent twice, the other not at all", first)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the delivery claimed for the other worker was not sent when the worker stopped")
		}
		<-stopped
		ds, err := r.ds.DeliveryList(t.Context(), store.DeliveryListParams{SubscriptionID: sub.GetId(), Limit: 10})
		if err != nil || len(ds) != 2 {
			t.Fatalf("deliveries: %d, %v", len(ds), err)
		}
		for _, d := range ds {
			if d.Status != store.DeliveryDelivered {
				t.Errorf("delivery %d is %v after the workers stopped, want delivered", d.ID, d.Status)
			}
		}
	})
}

// Spare deliveries go out oldest first; those of a subscription that is no longer a push target are let
// go (their leases end and the store hands them out again).
func TestSpareHandsOutOldestFirstAndLetsGoOfInactive(t *testing.T) {
	sp := newPushSpare()
	active := &pushTarget{sub: &store.Subscription{ID: "s"}}
	paused := &pushTarget{sub: &store.Subscription{ID: "p"}}
	leased := func(id int64) store.Claimed { return store.Claimed{Delivery: &store.Delivery{ID: id}} }
	sp.put(active, []store.Claimed{leased(1), leased(2), leased(3)})
	sp.put(paused, []store.Claimed{leased(9)})
	if got := sp.take("s", 2); len(got) != 2 || got[0].Delivery.ID != 1 || got[1].Delivery.ID != 2 {
		t.Fatalf("took %v, want deliveries 1 and 2", got)
	}
	sp.keep([]*pushTarget{active})
	if sp.held() != 1 {
		t.Fatalf("held %d after letting the paused subscription's go, want 1", sp.held())
	}
	if tt, rest := sp.any(5); tt != active || len(rest) != 1 || rest[0].Delivery.ID != 3 {
		t.Fatalf("any: %v %v, want delivery 3 of the active subscription", tt, rest)
	}
	if tt, _ := sp.any(5); tt != nil || sp.held() != 0 {
		t.Fatalf("spare not empty after everything was taken")
	}
}

// pairedClaims is a delivery store whose claims each wait (up to a second) for another to be under way,
// counting how many ran at once at most: claims that can run side by side meet at once, claims made one
// at a time each wait out the second alone.
type pairedClaims struct {
	store.DeliveryStore
	mu        sync.Mutex
	now, most int
	met       chan struct{} // closed when two claims first ran at once
}

func (s *pairedClaims) DeliveryClaim(ctx context.Context, p store.ClaimParams) (store.ClaimResult, error) {
	s.mu.Lock()
	s.now++
	if s.now > s.most {
		s.most = s.now
		if s.most == 2 {
			close(s.met)
		}
	}
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.now--; s.mu.Unlock() }()
	select {
	case <-s.met:
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	return s.DeliveryStore.DeliveryClaim(ctx, p)
}

// While claims come back full (a backlog), the workers claim side by side rather than one at a time.
func TestPushWorkersClaimSideBySideThroughABacklog(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_NUM_WORKERS", "0", "WEBHOOK_BATCH_SIZE", "1")
		sub := dueToPush(t, r, 12, func(*http.Request) {})
		slow := &pairedClaims{DeliveryStore: r.ds, met: make(chan struct{})}
		deliverAll(t, r, slow, 2, sub, 12)
		slow.mu.Lock()
		defer slow.mu.Unlock()
		if slow.most < 2 {
			t.Errorf("at most %d claim at a time through a backlog, want the workers side by side", slow.most)
		}
	})
}

// A worker whose every request slot is taken (an endpoint that holds its requests) waits for a slot to
// free instead of looking again and again: it looked a few times in the 300 ms below, not thousands.
func TestPushWorkerWithoutRoomWaitsForASlot(t *testing.T) {
	r := newPushRig(t, db.SQLite, "WEBHOOK_NUM_WORKERS", "0", "WEBHOOK_BATCH_SIZE", "1", "WEBHOOK_BATCH_TIMEOUT", "100ms")
	arrived := make(chan struct{}, 1)
	hold := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		arrived <- struct{}{}
		<-hold
	}))
	defer ts.Close()
	r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, 5*time.Second)
	r.srv.cfg.Push.Workers = 1
	p := r.srv.newPusher()
	w := p.newWorker()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = w.run(ctx) }()
	defer func() { cancel(); <-stopped }()
	defer close(hold)
	r.ingest(t)
	<-arrived
	first := p.turn.Load()
	// Past the batch timeout (100 ms) the worker looks again, its only slot still held by the request.
	testutil.Eventually(t, 5*time.Second, "the worker looks again after its batch", func() bool { return p.turn.Load() > first })
	before := p.turn.Load()
	// A window to count looks in: waiting polls (WEBHOOK_RECEIVE_POLL_INTERVAL 20 ms) make at most ~30,
	// fewer on a loaded machine; a spinning worker made millions.
	time.Sleep(300 * time.Millisecond)
	if looks := p.turn.Load() - before; looks > 50 {
		t.Errorf("the worker looked %d times in 300 ms with no free slot", looks)
	}
}
