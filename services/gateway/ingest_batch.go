package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/tracing"
)

// Deliveries reach the webhook service in IngestBatch calls: a delivery that arrives while
// maxIngestCalls calls are in flight waits for the next, which takes every delivery waiting by then
// (up to maxBatchDeliveries and maxBatchBytes). A lone delivery goes at once, in a call of its own, so
// batching adds no wait when the gateway is not busy; under load one call carries many deliveries and
// the gRPC round trip per delivery (about 110 µs of CPU between the two processes) is paid once per call.
// Each delivery is still verified, limited, deduplicated and committed on its own by the service, and
// answered on its own here, only after its commit.
const (
	maxIngestCalls     = 4
	maxBatchDeliveries = 64
	// maxBatchBytes keeps a call under gRPC's default 4 MiB receive limit; a larger delivery (the body
	// limit allows 3 MiB) goes alone.
	maxBatchBytes = 3 << 20
	// batchRetryAfter is how long the gateway sends deliveries one Ingest call each after the service
	// answered IngestBatch with UNIMPLEMENTED (an older webhook service during a rolling upgrade).
	batchRetryAfter = time.Minute
	// proofAllowance is room in a call for the address proof added when it is sent.
	proofAllowance = 128
)

// ingestBatcher gathers the deliveries of concurrent requests into IngestBatch calls.
type ingestBatcher struct {
	g *Gateway

	mu       sync.Mutex
	queue    []*pendingIngest
	inFlight int
	// unsupportedUntil (unix nanoseconds) is set while the service does not know IngestBatch.
	unsupportedUntil atomic.Int64
}

// pendingIngest is one delivery waiting for its answer.
type pendingIngest struct {
	ctx  context.Context // the HTTP request's
	item *webhookv1.IngestBatchItem
	size int
	done chan ingestAnswer // buffered: the sender never blocks
}

type ingestAnswer struct {
	resp *webhookv1.IngestResponse
	err  error
}

// ingest hands req to the webhook service and returns its answer, or ctx's error when the request ends
// first (its delivery may still be stored: the sender's retry then finds it a duplicate).
func (b *ingestBatcher) ingest(ctx context.Context, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	p := &pendingIngest{ctx: ctx, item: b.g.batchItem(ctx, req), done: make(chan ingestAnswer, 1)}
	p.size = proto.Size(p.item) + proofAllowance
	b.mu.Lock()
	b.queue = append(b.queue, p)
	start := b.inFlight < maxIngestCalls
	if start {
		b.inFlight++
	}
	b.mu.Unlock()
	if start {
		go b.send()
	}
	select {
	case a := <-p.done:
		return a.resp, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// send makes IngestBatch calls until no delivery waits.
func (b *ingestBatcher) send() {
	for {
		batch := b.take()
		if len(batch) == 0 {
			return
		}
		b.call(batch)
	}
}

// take removes the next call's deliveries from the queue, leaving out those whose request has ended;
// when none is left it gives up its place in flight.
func (b *ingestBatcher) take() []*pendingIngest {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*pendingIngest
	size, n := 0, 0
	for _, p := range b.queue {
		if len(batch) > 0 && (len(batch) == maxBatchDeliveries || size+p.size > maxBatchBytes) {
			break
		}
		n++
		if p.ctx.Err() != nil {
			continue // answered already, by its own context
		}
		batch = append(batch, p)
		size += p.size
	}
	b.queue = b.queue[n:]
	if len(b.queue) == 0 {
		b.queue = nil // let the backing array go
	}
	if len(batch) == 0 {
		b.inFlight--
	}
	return batch
}

// call sends one IngestBatch and answers each delivery. The call lasts until the latest of its
// deliveries' deadlines (none if one has none); one whose request ends sooner has been answered by then.
func (b *ingestBatcher) call(batch []*pendingIngest) {
	// While the service does not know IngestBatch, queued deliveries go one Ingest call each.
	if time.Now().UnixNano() < b.unsupportedUntil.Load() {
		b.oneByOne(batch)
		return
	}
	req := &webhookv1.IngestBatchRequest{Items: make([]*webhookv1.IngestBatchItem, len(batch))}
	now := time.Now()
	var deadline time.Time
	unbounded := false
	for i, p := range batch {
		// The proof is of the second it is sent in, however long the delivery waited.
		if p.item.ClientIp != "" {
			p.item.ClientIpProof = b.g.proofs.proof(b.g.cfg.ClientAddrSecret, p.item.ClientIp, now)
		}
		req.Items[i] = p.item
		d, ok := p.ctx.Deadline()
		switch {
		case !ok:
			unbounded = true
		case d.After(deadline):
			deadline = d
		}
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !unbounded {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	ctx = b.g.withWebhookCredential(ctx)
	resp, err := b.g.webhook.IngestBatch(ctx, req)
	switch code := status.Code(err); {
	case code == codes.Unimplemented:
		b.unsupportedUntil.Store(time.Now().Add(batchRetryAfter).UnixNano())
		b.g.transportLog.Warn(ctx, "the webhook service does not know IngestBatch (an older version?): deliveries go one Ingest call each for a while",
			"service", "gateway")
		b.oneByOne(batch)
		return
	case code == codes.ResourceExhausted && len(batch) > 1:
		// The whole call refused for its size (the service's GRPC_MAX_RECV_MSG_BYTES below maxBatchBytes)
		// or the gateway key's budget: each delivery goes on its own and gets its own answer.
		b.oneByOne(batch)
		return
	}
	if err == nil && len(resp.GetResults()) != len(batch) {
		err = status.Error(codes.Internal, "internal error") // a service that breaks the contract
		b.g.transportLog.Error(ctx, "IngestBatch answered a different number of results than deliveries sent", "service", "gateway")
	}
	for i, p := range batch {
		if err != nil {
			p.done <- ingestAnswer{err: err}
			continue
		}
		p.done <- resultAnswer(resp.GetResults()[i])
	}
}

// oneByOne sends each delivery of batch in an Ingest call of its own, under its request's context (and
// the credential and client address that context carries).
func (b *ingestBatcher) oneByOne(batch []*pendingIngest) {
	for _, p := range batch {
		go func() {
			r, err := b.g.webhook.Ingest(p.ctx, p.item.GetRequest())
			p.done <- ingestAnswer{r, err}
		}()
	}
}

// resultAnswer turns one item's result back into what Ingest would have returned.
func resultAnswer(r *webhookv1.IngestBatchResult) ingestAnswer {
	if raw := r.GetErrorStatus(); len(raw) > 0 {
		var st spb.Status
		if err := proto.Unmarshal(raw, &st); err != nil || st.GetCode() == int32(codes.OK) {
			return ingestAnswer{err: status.Error(codes.Internal, "internal error")}
		}
		return ingestAnswer{err: status.FromProto(&st).Err()}
	}
	if r.GetResponse() == nil {
		return ingestAnswer{err: status.Error(codes.Internal, "internal error")}
	}
	return ingestAnswer{resp: r.GetResponse()}
}

// batchItem is req with what a single Ingest call would carry in its metadata: the sender's address (its
// proof is added when the call is sent) and the request's trace.
func (g *Gateway) batchItem(ctx context.Context, req *webhookv1.IngestRequest) *webhookv1.IngestBatchItem {
	item := &webhookv1.IngestBatchItem{Request: req, Traceparent: tracing.Traceparent(ctx)}
	if addr, _ := ctx.Value(clientAddrKey{}).(string); addr != "" && addr != clientaddr.Unknown {
		item.ClientIp = addr
	}
	return item
}

// withWebhookCredential adds the gateway's own credential for the webhook service (never a sender's
// Authorization header).
func (g *Gateway) withWebhookCredential(ctx context.Context) context.Context {
	if g.cfg.WebhookCredential != nil {
		if key := g.cfg.WebhookCredential(); key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", g.bearer.value(key))
		}
	}
	return ctx
}
