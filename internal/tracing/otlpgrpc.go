package tracing

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// grpcClient sends spans to an OTLP/gRPC collector. It stands in for otlptracegrpc, which registers
// gRPC's gzip compressor in every process that links it: from then on every call of every client and
// server in the process carries grpc-accept-encoding headers, about a kilobyte and four allocations
// more per call (measured with internal/grpcserver's callcost benchmark), tracing on or off. The
// exporter (otlptrace) does the batching and the conversion; this only makes the call. A failed export
// is not retried: the batch is dropped and the error reported (logged at most once a minute).
type grpcClient struct {
	target  string
	creds   credentials.TransportCredentials
	headers metadata.MD

	mu     sync.Mutex
	conn   *grpc.ClientConn
	client collectorpb.TraceServiceClient
}

var _ otlptrace.Client = (*grpcClient)(nil)

// exportTimeout bounds one export (OTLP's default).
const exportTimeout = 10 * time.Second

func newGRPCClient(endpoint string, headers map[string]string) (*grpcClient, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid OTLP endpoint")
	}
	c := &grpcClient{target: u.Host, creds: insecure.NewCredentials(), headers: metadata.New(headers)}
	if u.Scheme == "https" {
		c.creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	return c, nil
}

// Start makes the connection, which dials at the first export.
func (c *grpcClient) Start(context.Context) error {
	conn, err := grpc.NewClient(c.target, grpc.WithTransportCredentials(c.creds))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.conn, c.client = conn, collectorpb.NewTraceServiceClient(conn)
	c.mu.Unlock()
	return nil
}

// Stop closes the connection.
func (c *grpcClient) Stop(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.client = nil, nil
	return err
}

// UploadTraces sends one batch.
func (c *grpcClient) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	c.mu.Lock()
	client := c.client
	c.mu.Unlock()
	if client == nil {
		return fmt.Errorf("OTLP exporter stopped")
	}
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	if len(c.headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, c.headers)
	}
	resp, err := client.Export(ctx, &collectorpb.ExportTraceServiceRequest{ResourceSpans: spans})
	if err != nil {
		return err
	}
	if p := resp.GetPartialSuccess(); p.GetRejectedSpans() > 0 {
		return fmt.Errorf("the collector rejected %d spans: %s", p.GetRejectedSpans(), p.GetErrorMessage())
	}
	return nil
}
