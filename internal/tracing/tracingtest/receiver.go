// Package tracingtest runs a real OTLP/gRPC trace receiver on a loopback port, for tests that point a
// process's OTEL_EXPORTER_OTLP_ENDPOINT at it and check the spans it exported.
package tracingtest

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Span is an exported span, flattened.
type Span struct {
	// Service is the resource's service.name; Resource all its attributes.
	Service  string
	Resource map[string]string
	TraceID  string
	SpanID   string
	ParentID string // "" for a root span
	Name     string
	Kind     tracepb.Span_SpanKind
	Attrs    map[string]string
	// Links are the span contexts the span links to, as "traceid/spanid".
	Links []string
	// Error is whether the span's status is an error.
	Error bool
}

// Receiver is an OTLP trace service that keeps what it is sent.
type Receiver struct {
	collectorpb.UnimplementedTraceServiceServer
	addr  string
	conns atomic.Int64
	mu    sync.Mutex
	spans []Span
	// changed is closed and replaced whenever spans arrive.
	changed chan struct{}
	// apiKey is the x-api-key header of the last export.
	apiKey string
}

// APIKey is the x-api-key header (gRPC metadata or HTTP header) of the last export.
func (r *Receiver) APIKey() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apiKey
}

// Start serves a receiver on a loopback port until the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{addr: lis.Addr().String(), changed: make(chan struct{})}
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(countingListener{Listener: lis, n: &r.conns}) }()
	t.Cleanup(srv.Stop)
	return r
}

// Endpoint is the receiver's URL, for OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) Endpoint() string { return "http://" + r.addr }

// Connections is how many connections the receiver has accepted.
func (r *Receiver) Connections() int64 { return r.conns.Load() }

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Wait returns the spans once done says they are complete, or fails the test after timeout.
func (r *Receiver) Wait(t testing.TB, timeout time.Duration, done func([]Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if done(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the spans wanted did not arrive within %s; received %d:\n%v", timeout, len(spans), spans)
			return nil
		}
	}
}

// Export implements the OTLP trace service.
func (r *Receiver) Export(ctx context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	key := ""
	if v := metadata.ValueFromIncomingContext(ctx, "x-api-key"); len(v) > 0 {
		key = v[0]
	}
	if v, ok := ctx.Value(httpKey{}).(string); ok {
		key = v
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		service := res["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{Service: service, Resource: res, TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Name: s.GetName(), Kind: s.GetKind(), Attrs: attrs(s.GetAttributes()),
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR}
				if len(s.GetParentSpanId()) > 0 {
					sp.ParentID = hex.EncodeToString(s.GetParentSpanId())
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, hex.EncodeToString(l.GetTraceId())+"/"+hex.EncodeToString(l.GetSpanId()))
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.apiKey = key
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			out[kv.GetKey()] = v.GetStringValue()
		default:
			out[kv.GetKey()] = v.String()
		}
	}
	return out
}

// httpKey carries an HTTP export's x-api-key header to Export.
type httpKey struct{}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// StartHTTP serves a receiver over OTLP/HTTP (protobuf, POST /v1/traces) on a loopback port until the
// test ends; Endpoint is then its base URL.
func StartHTTP(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var in collectorpb.ExportTraceServiceRequest
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" ||
			err != nil || proto.Unmarshal(body, &in) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		out, _ := r.Export(context.WithValue(req.Context(), httpKey{}, req.Header.Get("X-Api-Key")), &in)
		raw, _ := proto.Marshal(out)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(raw)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	srv.Start()
	r.addr = srv.Listener.Addr().String()
	t.Cleanup(srv.Close)
	return r
}
