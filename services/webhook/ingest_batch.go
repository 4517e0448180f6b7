package webhook

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/trace"
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
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			ictx := ctx
			if sc := tracing.FromTraceparent(it.GetTraceparent(), ""); sc.IsValid() {
				ictx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
			sender := clientaddr.Reported(ctx, s.cfg.TrustedProxies, it.GetClientIp(), it.GetClientIpProof())
			resp, err := s.ingest(ictx, sender, it.GetRequest())
			results[i] = batchResult(resp, err)
		})
	}
	wg.Wait()
	return &webhookv1.IngestBatchResponse{Results: results}, nil
}

// batchResult is one item's answer: the response, or the status Ingest would have failed with, mapped
// as the platform maps a handler's error (grpcserver.ToStatus: internal messages hidden).
func batchResult(resp *webhookv1.IngestResponse, err error) *webhookv1.IngestBatchResult {
	if err == nil {
		return &webhookv1.IngestBatchResult{Response: resp}
	}
	raw, merr := proto.Marshal(status.Convert(grpcserver.ToStatus(err)).Proto())
	if merr != nil {
		raw, _ = proto.Marshal(status.New(codes.Internal, "internal error").Proto())
	}
	return &webhookv1.IngestBatchResult{ErrorStatus: raw}
}
