package webhook

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// gatedSettles is a delivery store whose settles wait for the gate and are counted by size.
type gatedSettles struct {
	store.DeliveryStore
	gate  chan struct{}
	mu    sync.Mutex
	sizes []int
}

func (g *gatedSettles) DeliverySettleBatch(ctx context.Context, ps []store.SettleParams) ([]store.SettleResult, error) {
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
		r.srv.deliveries = gated
		target, err := p.targets(t.Context())
		if err != nil || len(target) != 1 {
			t.Fatalf("targets: %v, %v", target, err)
		}
		var done sync.WaitGroup
		batch := func(c store.Claimed) pushBatchOutcome {
			done.Add(1)
			return pushBatchOutcome{t: target[0], done: done.Done,
				outs: []pushOutcome{{claimed: c, ok: true, status: http.StatusNoContent, result: pushResultSuccess}}}
		}
		p.settler.add(batch(res.Claimed[0]))
		testutil.Eventually(t, 5*time.Second, "the first settle is waiting", func() bool {
			p.settler.mu.Lock()
			defer p.settler.mu.Unlock()
			return len(p.settler.queue) == 0 && p.settler.running
		})
		p.settler.add(batch(res.Claimed[1]))
		p.settler.add(batch(res.Claimed[2]))
		close(gated.gate)
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
