package webhook

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/tracing"
)

// maxBatchItems bounds IngestBatch: the gateway sends far fewer (what arrives while one call is in
// flight), and each item holds a goroutine until its commit.
const maxBatchItems = 256

// IngestBatch implements webhookv1.WebhookServiceServer: each item goes through exactly what Ingest does
// (its sender's budget, the source's checks and verification, the backlog, deduplication, the commit),
// concurrently, so that group commit stores them together, and is answered on its own. One call saves
// the gateway and this service a gRPC round trip per delivery; nothing else is shared between items.
func (s *Server) IngestBatch(ctx context.Context, req *webhookv1.IngestBatchRequest) (*webhookv1.IngestBatchResponse, error) {
	items := req.GetItems()
	if len(items) == 0 || len(items) > maxBatchItems {
		return nil, errs.Invalid("items must hold 1 to %d deliveries", maxBatchItems)
	}
	for i, it := range items {
		if it.GetRequest() == nil {
			return nil, errs.Invalid("items[%d].request is required", i)
		}
	}
	results := make([]*webhookv1.IngestBatchResult, len(items))
	serverFailed := make([]error, len(items)) // an item's error when it is this service's own (serverSide)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			ictx := ctx
			if sc := tracing.FromTraceparent(it.GetTraceparent(), ""); sc.IsValid() {
				ictx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
			var resp *webhookv1.IngestResponse
			var err error
			// A panic here would not reach the interceptor's recovery (it covers the handler's goroutine
			// only) and would end the process: it fails this item alone, as it would fail one Ingest.
			defer func() {
				r := recover()
				if r != nil {
					s.log.ErrorContext(ictx, "panic in an IngestBatch item", "service", "webhook", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = errs.New(errs.KindInternal, "panic")
				}
				if err == nil {
					results[i] = &webhookv1.IngestBatchResult{Response: resp}
					return
				}
				st := status.Convert(grpcserver.ToStatus(err))
				results[i] = batchError(st)
				if r == nil && (st.Code() == codes.Internal || st.Code() == codes.Unknown) {
					// What the interceptor logs of a failed Ingest: the cause stays here, never in the answer.
					s.log.ErrorContext(ictx, "IngestBatch item failed", "service", "webhook", "source", it.GetRequest().GetSource(), "error", err.Error())
				}
				if serverSide(st) {
					serverFailed[i] = err
				}
			}()
			sender := clientaddr.Reported(ctx, s.cfg.TrustedProxies, it.GetClientIp(), it.GetClientIpProof())
			resp, err = s.ingest(ictx, sender, it.GetRequest())
		})
	}
	wg.Wait()
	// When every item failed for a reason of this service's (the store down or broken), the call fails
	// with the first: health tracking, the error metrics and the gateway see it as they see a failed
	// Ingest, and the gateway answers each delivery from it alike.
	if !slices.Contains(serverFailed, nil) {
		return nil, serverFailed[0]
	}
	return &webhookv1.IngestBatchResponse{Results: results}, nil
}

// serverSide reports whether st fails a delivery for this service's reason (unavailable or internal,
// without the ErrorInfo of a refusal such as a full backlog), not the delivery's or its sender's.
func serverSide(st *status.Status) bool {
	switch st.Code() {
	case codes.Unavailable, codes.Internal, codes.Unknown:
	default:
		return false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == ErrorDomain {
			return false
		}
	}
	return true
}

// batchError is one refused item's answer: the status Ingest would have failed with, as the platform
// maps a handler's error (grpcserver.ToStatus: internal messages hidden).
func batchError(st *status.Status) *webhookv1.IngestBatchResult {
	raw, err := proto.Marshal(st.Proto())
	if err != nil {
		raw, _ = proto.Marshal(status.New(codes.Internal, "internal error").Proto())
	}
	return &webhookv1.IngestBatchResult{ErrorStatus: raw}
}
