package webhook

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// gatedSettles is a delivery store whose settles wait for the gate and are counted by size.
type gatedSettles struct {
	store.DeliveryStore
	gate    chan struct{}
	waiting atomic.Int32 // settles that reached the gate
	mu      sync.Mutex
	sizes   []int
}

func (g *gatedSettles) DeliverySettleBatch(ctx context.Context, ps []store.SettleParams) ([]store.SettleResult, error) {
	g.waiting.Add(1)
	<-g.gate
	g.mu.Lock()
	g.sizes = append(g.sizes, len(ps))
	g.mu.Unlock()
	return g.DeliveryStore.DeliverySettleBatch(ctx, ps)
}

// Batches that finish while a settle commits are recorded together in the next one: one transaction
// for the two that waited, not one each; each batch's done runs once it is recorded.
func TestPushSettlesTakeEveryBatchThatWaited(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_NUM_WORKERS", "0")
		sub := r.createPush(t, "hook", "http://127.0.0.1:9/", newSigningSecret(t, 32), true, 5*time.Second)
		for range 3 {
			r.ingest(t)
		}
		p := r.srv.newPusher()
		res, err := r.ds.DeliveryClaim(t.Context(), store.ClaimParams{SubscriptionID: sub.GetId(), Consumer: p.consumer, Now: r.srv.now(), Limit: 3})
		if err != nil || len(res.Claimed) != 3 {
			t.Fatalf("claim: %d, %v", len(res.Claimed), err)
		}
		gated := &gatedSettles{DeliveryStore: r.ds, gate: make(chan struct{})}
		open := sync.OnceFunc(func() { close(gated.gate) })
		defer open()
		r.srv.deliveries = gated
		target, err := p.targets(t.Context())
		if err != nil || len(target) != 1 {
			t.Fatalf("targets: %v, %v", target, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var running sync.WaitGroup
		running.Go(func() { _ = p.settles.Run(ctx) })
		defer func() { open(); cancel(); running.Wait() }()
		testutil.Eventually(t, 5*time.Second, "the settle worker runs", p.settles.Running)
		var done sync.WaitGroup
		record := func(c store.Claimed) {
			done.Go(func() {
				p.record(t.Context(), pushBatchOutcome{t: target[0],
					outs: []pushOutcome{{claimed: c, ok: true, status: http.StatusNoContent, result: pushResultSuccess}}})
			})
		}
		record(res.Claimed[0])
		testutil.Eventually(t, 5*time.Second, "the first settle is under way", func() bool { return gated.waiting.Load() == 1 })
		record(res.Claimed[1])
		record(res.Claimed[2])
		testutil.Eventually(t, 5*time.Second, "two batches wait behind it", func() bool { return p.settles.Queued() == 2 })
		open()
		done.Wait()
		gated.mu.Lock()
		sizes := append([]int(nil), gated.sizes...)
		gated.mu.Unlock()
		if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 2 {
			t.Errorf("settles of %v deliveries, want [1 2]", sizes)
		}
		ds, err := r.ds.DeliveryList(t.Context(), store.DeliveryListParams{SubscriptionID: sub.GetId(), Limit: 10})
		if err != nil || len(ds) != 3 {
			t.Fatalf("deliveries: %d, %v", len(ds), err)
		}
		for _, d := range ds {
			if d.Status != store.DeliveryDelivered {
				t.Errorf("delivery %d is %v, want delivered", d.ID, d.Status)
			}
		}
	})
}
