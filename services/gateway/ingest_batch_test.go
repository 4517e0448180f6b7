package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/testutil"
)

// gatedBatchWebhook holds every IngestBatch call until release is closed, then stores each item under
// its own body as event id.
type gatedBatchWebhook struct {
	webhookv1.UnimplementedWebhookServiceServer
	release chan struct{}
	mu      sync.Mutex
	calls   []int // items per call, in arrival order
}

func (w *gatedBatchWebhook) IngestBatch(_ context.Context, req *webhookv1.IngestBatchRequest) (*webhookv1.IngestBatchResponse, error) {
	w.mu.Lock()
	w.calls = append(w.calls, len(req.GetItems()))
	w.mu.Unlock()
	<-w.release
	resp := &webhookv1.IngestBatchResponse{}
	for _, it := range req.GetItems() {
		resp.Results = append(resp.Results, &webhookv1.IngestBatchResult{Response: &webhookv1.IngestResponse{EventId: string(it.GetRequest().GetBody())}})
	}
	return resp, nil
}

func (w *gatedBatchWebhook) received() (calls, items int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.calls {
		items += n
	}
	return len(w.calls), items
}

// TestIngestBatchesGatherConcurrentDeliveries: while maxIngestCalls calls are in flight, new deliveries
// wait and then go together, each answered with its own result and only after its call returns.
func TestIngestBatchesGatherConcurrentDeliveries(t *testing.T) {
	svc := &gatedBatchWebhook{release: make(chan struct{})}
	g := newGateway(t, nil, serveWebhook(t, svc), io.Discard)
	base := serveHTTP(t, g)
	const n = 40
	type answer struct {
		code int
		id   string
		err  error
	}
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			body := fmt.Sprintf("delivery-%02d", i)
			resp, err := http.Post(base+"/webhooks/zoho", "application/json", strings.NewReader(body))
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			var got struct{ EventID string }
			err = json.NewDecoder(resp.Body).Decode(&got)
			if got.EventID != body {
				err = fmt.Errorf("answered with event %q for %q (%v)", got.EventID, body, err)
			}
			answers <- answer{code: resp.StatusCode, err: err}
		}()
	}
	// Every delivery is either in a held call or waiting for one, and every call's place is taken.
	testutil.Eventually(t, 10*time.Second, "40 deliveries in calls or queued behind them", func() bool {
		_, items := svc.received()
		g.ingests.mu.Lock()
		defer g.ingests.mu.Unlock()
		return g.ingests.inFlight == maxIngestCalls && items+len(g.ingests.queue) == n
	})
	select {
	case a := <-answers:
		t.Fatalf("answered before its call returned: %+v", a)
	default:
	}
	close(svc.release)
	for range n {
		a := <-answers
		if a.err != nil || a.code != http.StatusAccepted {
			t.Fatalf("delivery answered %d: %v", a.code, a.err)
		}
	}
	calls, items := svc.received()
	if items != n || calls > 2*maxIngestCalls {
		t.Fatalf("%d deliveries in %d calls (%v), want %d in at most %d", items, calls, svc.calls, n, 2*maxIngestCalls)
	}
	testutil.Eventually(t, 5*time.Second, "no call left in flight", func() bool {
		g.ingests.mu.Lock()
		defer g.ingests.mu.Unlock()
		return g.ingests.inFlight == 0 && len(g.ingests.queue) == 0
	})
}

// sizeLimitedWebhook refuses any IngestBatch of more than one delivery as a service with a small
// GRPC_MAX_RECV_MSG_BYTES would (RESOURCE_EXHAUSTED, no ErrorInfo), and stores single Ingest calls.
type sizeLimitedWebhook struct {
	webhookv1.UnimplementedWebhookServiceServer
	single atomic.Int32
}

func (w *sizeLimitedWebhook) IngestBatch(_ context.Context, req *webhookv1.IngestBatchRequest) (*webhookv1.IngestBatchResponse, error) {
	if len(req.GetItems()) > 1 {
		return nil, status.Error(codes.ResourceExhausted, "grpc: received message larger than max")
	}
	return &webhookv1.IngestBatchResponse{Results: []*webhookv1.IngestBatchResult{{Response: &webhookv1.IngestResponse{EventId: "one"}}}}, nil
}

func (w *sizeLimitedWebhook) Ingest(_ context.Context, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	w.single.Add(1)
	return &webhookv1.IngestResponse{EventId: string(req.GetBody())}, nil
}

// TestIngestBatchTooLargeGoesOneByOne: a call of several deliveries refused whole with RESOURCE_EXHAUSTED
// (too large for the service's receive limit) is not the senders' fault: each delivery is sent again on
// its own and answered from that.
func TestIngestBatchTooLargeGoesOneByOne(t *testing.T) {
	svc := &sizeLimitedWebhook{}
	g := newGateway(t, nil, serveWebhook(t, svc), io.Discard)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var batch []*pendingIngest
	for _, body := range []string{"a", "b"} {
		batch = append(batch, &pendingIngest{ctx: ctx, item: g.batchItem(ctx, &webhookv1.IngestRequest{Source: "zoho", Body: []byte(body)}),
			done: make(chan ingestAnswer, 1)})
	}
	g.ingests.call(batch)
	for i, body := range []string{"a", "b"} {
		a := <-batch[i].done
		if a.err != nil || a.resp.GetEventId() != body {
			t.Fatalf("delivery %s: %v %v", body, a.resp, a.err)
		}
	}
	if n := svc.single.Load(); n != 2 {
		t.Fatalf("%d single Ingest calls, want 2", n)
	}
}

// olderWebhook is a webhook service from before IngestBatch (UNIMPLEMENTED, counted) that stores single
// Ingest calls.
type olderWebhook struct {
	webhookv1.UnimplementedWebhookServiceServer
	batches, single atomic.Int32
}

func (w *olderWebhook) IngestBatch(context.Context, *webhookv1.IngestBatchRequest) (*webhookv1.IngestBatchResponse, error) {
	w.batches.Add(1)
	return nil, status.Error(codes.Unimplemented, "unknown method IngestBatch")
}

func (w *olderWebhook) Ingest(_ context.Context, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	w.single.Add(1)
	return &webhookv1.IngestResponse{EventId: string(req.GetBody())}, nil
}

// TestIngestBatchFallsBackForAnOlderService: during a rolling upgrade the gateway may be newer than the
// webhook service. A call the service does not know is answered by sending each delivery on its own, and
// for batchRetryAfter the gateway does not try IngestBatch again: the next deliveries go one by one at
// once.
func TestIngestBatchFallsBackForAnOlderService(t *testing.T) {
	svc := &olderWebhook{}
	g := newGateway(t, nil, serveWebhook(t, svc), io.Discard)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	send := func(bodies ...string) {
		t.Helper()
		var batch []*pendingIngest
		for _, body := range bodies {
			batch = append(batch, &pendingIngest{ctx: ctx, item: g.batchItem(ctx, &webhookv1.IngestRequest{Source: "zoho", Body: []byte(body)}),
				done: make(chan ingestAnswer, 1)})
		}
		g.ingests.call(batch)
		for i, body := range bodies {
			if a := <-batch[i].done; a.err != nil || a.resp.GetEventId() != body {
				t.Fatalf("delivery %s: %v %v", body, a.resp, a.err)
			}
		}
	}
	send("a", "b")
	send("c", "d")
	if b, s := svc.batches.Load(), svc.single.Load(); b != 1 || s != 4 {
		t.Fatalf("%d IngestBatch and %d Ingest calls, want 1 and 4 (no second IngestBatch within batchRetryAfter)", b, s)
	}
}
