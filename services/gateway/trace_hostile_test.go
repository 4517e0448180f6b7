package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var traceIDForm = regexp.MustCompile(`^[0-9a-f]{32}$`)

// rawRequest sends head (the request line and headers, CRLF-separated, without the final blank line)
// over a plain connection, so that headers Go's client refuses to send reach the gateway, and returns
// the answer.
func rawRequest(t *testing.T, base, head string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head+"\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A caller's traceparent and tracestate are continued only when W3C-valid: whatever a hostile caller
// sends (malformed, huge, repeated, zero ids, bad flags, upper-case hex, version ff, NUL, invalid UTF-8,
// text meant to forge log fields), the gateway answers, the trace id in X-Trace-Id, in the error body
// and in the log is 32 lower-case hex digits and none of the caller's other text, and the call the
// service receives carries a valid traceparent of the same trace.
func TestHostileTraceContext(t *testing.T) {
	rec := &recorder{answer: func(context.Context, string) error { return status.Error(codes.NotFound, "no such connection") }}
	var logs syncBuffer
	g := newGateway(t, nil, serveFakes(t, rec), &logs)
	base := serveHTTP(t, g)
	const valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const validID = "0af7651916cd43dd8448eb211c80319c"
	cases := []struct {
		name      string
		headers   []string
		continue_ bool
	}{
		{"valid", []string{"traceparent: " + valid}, true},
		{"valid with hostile tracestate", []string{"traceparent: " + valid, "tracestate: INJECT=\"x\" level=ERROR,a=b" + strings.Repeat(",k=v", 100)}, true},
		{"upper-case hex", []string{"traceparent: " + strings.ToUpper(valid)}, false},
		{"zero trace id", []string{"traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01"}, false},
		{"zero span id", []string{"traceparent: 00-" + validID + "-0000000000000000-01"}, false},
		{"version ff", []string{"traceparent: ff-" + validID + "-b7ad6b7169203331-01"}, false},
		{"bad flags", []string{"traceparent: 00-" + validID + "-b7ad6b7169203331-zz"}, false},
		{"version 00 with more fields", []string{"traceparent: " + valid + "-INJECT"}, false},
		{"forged log field", []string{"traceparent: 00-" + validID + "\" INJECT=1 x=\"-b7ad6b7169203331-01"}, false},
		{"short id", []string{"traceparent: 00-0af7651916cd43dd-b7ad6b7169203331-01"}, false},
		{"huge", []string{"traceparent: 00-" + strings.Repeat("INJECT", 1000) + "-b7ad6b7169203331-01"}, false},
		{"invalid UTF-8", []string{"traceparent: 00-" + validID + "\xff\xfeINJECT-b7ad6b7169203331-01"}, false},
		{"many headers", append([]string{"traceparent: INJECT"}, strings.Split(strings.Repeat("traceparent: "+valid+"\n", 50), "\n")[:50]...), false},
		{"as gRPC metadata", []string{"Grpc-Metadata-Traceparent: " + valid, "Grpc-Metadata-Tracestate: INJECT=1"}, false},
		{"NUL", []string{"traceparent: 00-" + validID + "\x00INJECT-b7ad6b7169203331-01"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(rec.all())
			resp := rawRequest(t, base, "GET /v1/connections HTTP/1.1\r\n"+strings.Join(c.headers, "\r\n"))
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusBadRequest && strings.Contains(c.name, "NUL") {
				return // refused by net/http before the gateway: nothing to echo
			}
			id := resp.Header.Get("X-Trace-Id")
			if !traceIDForm.MatchString(id) || id == strings.Repeat("0", 32) {
				t.Fatalf("status %d, X-Trace-Id %q", resp.StatusCode, id)
			}
			if c.continue_ != (id == validID) {
				t.Fatalf("X-Trace-Id %s: continued the caller's trace %v, want %v", id, id == validID, c.continue_)
			}
			var answer struct {
				Details []struct {
					RequestID string `json:"requestId"`
				} `json:"details"`
			}
			if err := json.Unmarshal(body, &answer); err != nil || len(answer.Details) != 1 || answer.Details[0].RequestID != id {
				t.Fatalf("status %d body %s, want the trace id %s in RequestInfo", resp.StatusCode, body, id)
			}
			if strings.Contains(string(body), "INJECT") {
				t.Fatalf("body echoes the caller's text: %s", body)
			}
			calls := rec.all()[before:]
			if len(calls) != 1 {
				t.Fatalf("%d calls reached the service", len(calls))
			}
			tp := calls[0].md.Get("traceparent")
			if len(tp) != 1 || !strings.HasPrefix(tp[0], "00-"+id+"-") || len(tp[0]) != 55 {
				t.Fatalf("the service got traceparent %q, want one of trace %s", tp, id)
			}
			for _, ts := range calls[0].md.Get("tracestate") {
				if strings.Contains(ts, "INJECT") {
					t.Fatalf("an invalid tracestate was forwarded: %q", ts)
				}
			}
		})
	}
	if strings.Contains(logs.String(), "INJECT") {
		t.Fatalf("the log quotes the caller's trace context:\n%s", logs.String())
	}
}
