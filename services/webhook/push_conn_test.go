package webhook

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// TestPushWorkersCloseConnectionsAtStop: the keep-alive connections the push workers hold to endpoints
// are closed when the workers stop, not left open (with their goroutines) until the idle timeout.
func TestPushWorkersCloseConnectionsAtStop(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_NUM_WORKERS", "1")
		var mu sync.Mutex
		open := map[net.Conn]bool{}
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		ts.Config.ConnState = func(c net.Conn, s http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			switch s {
			case http.StateNew:
				open[c] = true
			case http.StateClosed, http.StateHijacked:
				delete(open, c)
			}
		}
		ts.Start()
		defer ts.Close()
		sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, time.Second)
		r.ingest(t)
		if d, _ := r.waitAttempts(t, sub.GetId(), 1); d.Status != store.DeliveryDelivered {
			t.Fatalf("status %s, want delivered", statusName(d.Status))
		}
		r.stop()
		select {
		case <-r.stopped:
		case <-time.After(15 * time.Second):
			t.Fatal("the workers did not stop")
		}
		testutil.Eventually(t, 5*time.Second, "the endpoint's connections closed", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(open) == 0
		})
	})
}
