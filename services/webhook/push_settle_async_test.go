package webhook

import (
	"context"
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

// heldSettles is a delivery store whose settles wait until the gate opens.
type heldSettles struct {
	store.DeliveryStore
	gate chan struct{}
}

func (h heldSettles) DeliverySettleBatch(ctx context.Context, ps []store.SettleParams) ([]store.SettleResult, error) {
	<-h.gate
	return h.DeliveryStore.DeliverySettleBatch(ctx, ps)
}

// A push worker sends its next batch while the outcome of the last is still being recorded, and every
// outcome is recorded once the store lets it.
func TestPushSendsWhileTheLastSettleRuns(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_NUM_WORKERS", "0", "WEBHOOK_BATCH_SIZE", "1")
		got := make(chan string, 10)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
			got <- req.Header.Get("Webhook-Id")
		}))
		defer ts.Close()
		sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, 5*time.Second)
		gate := make(chan struct{})
		var open sync.Once
		release := func() { open.Do(func() { close(gate) }) }
		defer release()
		r.srv.deliveries = heldSettles{DeliveryStore: r.ds, gate: gate}
		r.srv.cfg.Push.Workers = 1
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { defer close(stopped); _ = r.srv.pushWorkers()[0].Run(ctx) }()
		defer func() { release(); cancel(); <-stopped }()

		r.ingest(t)
		r.ingest(t)
		for i := range 2 {
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				t.Fatalf("push %d did not arrive while the first settle was held", i+1)
			}
		}
		release()
		testutil.Eventually(t, 15*time.Second, "both deliveries recorded as delivered", func() bool {
			ds, err := r.ds.DeliveryList(t.Context(), store.DeliveryListParams{SubscriptionID: sub.GetId(), Limit: 10})
			if err != nil || len(ds) != 2 {
				return false
			}
			for _, d := range ds {
				if d.Status != store.DeliveryDelivered {
					return false
				}
			}
			return true
		})
	})
}
