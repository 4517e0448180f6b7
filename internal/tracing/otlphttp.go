package tracing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// httpClient sends spans to an OTLP/HTTP collector as protobuf (http/protobuf). Like grpcClient it
// stands in for the OpenTelemetry exporter package (otlptracehttp), whose shared configuration code
// registers gRPC's gzip compressor in the whole process.
type httpClient struct {
	url     string
	headers map[string]string
	http    *http.Client
}

var _ otlptrace.Client = (*httpClient)(nil)

func newHTTPClient(endpoint string, headers map[string]string) *httpClient {
	return &httpClient{url: endpoint, headers: headers, http: &http.Client{Timeout: exportTimeout,
		// A redirect would carry the headers (a collector's API key) to wherever it points: Go strips
		// only Authorization and cookies when the host changes. The 3xx is reported as a failed export.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *httpClient) Start(context.Context) error { return nil }

func (c *httpClient) Stop(context.Context) error {
	c.http.CloseIdleConnections()
	return nil
}

// UploadTraces posts one batch.
func (c *httpClient) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	body, err := proto.Marshal(&collectorpb.ExportTraceServiceRequest{ResourceSpans: spans})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := c.http.Do(req)
	if err != nil {
		// net/http's error quotes the URL with only the password masked: the user name and query may
		// hold a collector's credentials too, and this error is logged.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return fmt.Errorf("OTLP export to %s: %w", redactURL(c.url), uerr.Err)
		}
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("OTLP collector answered %s", resp.Status)
	}
	var answer collectorpb.ExportTraceServiceResponse
	if proto.Unmarshal(raw, &answer) == nil {
		if p := answer.GetPartialSuccess(); p.GetRejectedSpans() > 0 {
			return fmt.Errorf("the collector rejected %d spans: %s", p.GetRejectedSpans(), p.GetErrorMessage())
		}
	}
	return nil
}
