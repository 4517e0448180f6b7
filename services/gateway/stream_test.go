package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
)

// fakeExport stands in for the audit service's ExportEvents.
type fakeExport struct {
	auditv1.UnimplementedAuditServiceServer
	export func(auditv1.AuditService_ExportEventsServer) error
}

func (f fakeExport) ExportEvents(_ *auditv1.ExportEventsRequest, s auditv1.AuditService_ExportEventsServer) error {
	return f.export(s)
}

func exportItem(seq int64, meta string) *auditv1.ExportEventsResponse {
	return &auditv1.ExportEventsResponse{Item: &auditv1.ExportEventsResponse_Event{Event: &auditv1.Event{Sequence: seq, MetadataJson: meta}}}
}

// exportStack is a gateway (its real Serve, with a 1 s request timeout) in front of a stand-in export.
type exportStack struct {
	url     string       // the export's URL
	service *grpc.Server // the stand-in service
	stop    func() error // stops the gateway as SIGTERM does and returns Serve's error
}

func serveExport(t *testing.T, export func(auditv1.AuditService_ExportEventsServer) error) string {
	t.Helper()
	return serveExportStack(t, nil, export).url
}

// serveExportStack starts an exportStack; env adds to the gateway's configuration.
func serveExportStack(t *testing.T, env map[string]string, export func(auditv1.AuditService_ExportEventsServer) error) *exportStack {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	auditv1.RegisterAuditServiceServer(srv, fakeExport{export: export})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	closed := closedAddr(t)
	m := map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "GATEWAY_REQUEST_TIMEOUT": "1s",
		"TOKEN_GRPC_ENDPOINT": closed, "WEBHOOK_GRPC_ENDPOINT": closed}
	for k, v := range env {
		m[k] = v
	}
	g := newGateway(t, m, lis.Addr().String(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, func(a string) { addr <- a }) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-served })
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return &exportStack{url: "http://" + <-addr + "/v1/audit/events:export", service: srv, stop: stop}
}

// lastLine reads a streamed answer to its end (the first line already read) and returns its last line.
func lastLine(t *testing.T, body *bufio.Reader) string {
	t.Helper()
	rest, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("the answer did not end cleanly: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	return lines[len(lines)-1]
}

// within waits for ch or fails after d.
func within[T any](t *testing.T, d time.Duration, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: not within %s", what, d)
		panic("unreachable")
	}
}

// The export is streamed: its first line reaches the client while the service has yet to send the rest,
// as NDJSON, and an export that lasts longer than the request timeout, and than the server's read and
// write timeouts derived from it, completes (http.TimeoutHandler used to buffer it and answer 503).
func TestExportStreamsPastTheRequestTimeout(t *testing.T) {
	t.Parallel()
	firstRead := make(chan struct{})
	// The server's WriteTimeout is the request timeout plus 5 s: outlast it.
	const hold = 1*time.Second + 5*time.Second + 500*time.Millisecond
	url := serveExport(t, func(s auditv1.AuditService_ExportEventsServer) error {
		if err := s.Send(exportItem(1, "{}")); err != nil {
			return err
		}
		select {
		case <-firstRead:
		case <-s.Context().Done():
			return s.Context().Err()
		}
		select { // the precondition is time itself: the export must outlast every timeout
		case <-time.After(hold):
		case <-s.Context().Done():
			return s.Context().Err()
		}
		for seq := int64(2); seq <= 50; seq++ {
			if err := s.Send(exportItem(seq, "{}")); err != nil {
				return err
			}
		}
		return nil
	})
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ndjson {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	lineRead := make(chan bool, 1)
	go func() { lineRead <- lines.Scan() }()
	if !within(t, 10*time.Second, "the first line", lineRead) {
		t.Fatalf("no first line: %v", lines.Err())
	}
	close(firstRead)
	n := 1
	for lines.Scan() {
		var item struct {
			Result *struct {
				Event *struct{ Sequence string } `json:"event"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &item); err != nil || item.Result == nil || item.Result.Event == nil {
			t.Fatalf("line %d: %s", n+1, lines.Text())
		}
		n++
		if want := fmt.Sprint(n); item.Result.Event.Sequence != want {
			t.Fatalf("line %d holds sequence %s", n, item.Result.Event.Sequence)
		}
	}
	if err := lines.Err(); err != nil || n != 50 {
		t.Fatalf("read %d lines of 50: %v", n, err)
	}
	if took := time.Since(start); took < hold {
		t.Fatalf("the export took %s, less than the %s it was held", took, hold)
	}
}

// A client that leaves ends the export at once, and one that stops reading is cut once a write has waited
// for the request timeout: neither holds the service's stream.
func TestExportEndsWithItsClient(t *testing.T) {
	t.Parallel()
	for _, leave := range []string{"closes", "stops reading"} {
		t.Run(leave, func(t *testing.T) {
			t.Parallel()
			ended := make(chan error, 1)
			big := `{"pad":"` + strings.Repeat("x", 32<<10) + `"}`
			url := serveExport(t, func(s auditv1.AuditService_ExportEventsServer) error {
				var err error
				for seq := int64(1); seq <= 100_000 && err == nil; seq++ { // ~3 GB: far more than any buffer
					err = s.Send(exportItem(seq, big))
				}
				ended <- err
				return err
			})
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			if leave == "closes" {
				resp.Body.Close()
			} else {
				defer resp.Body.Close()
			}
			if err := within(t, 30*time.Second, "the service's stream ending", ended); status.Code(err) != codes.Canceled {
				t.Fatalf("the stream ended with %v, want Canceled", err)
			}
		})
	}
}

// A failure after the first message ends the body with an {"error": ...} line (the status is already
// 200), so that a reader can tell a cut export from a complete one.
func TestExportErrorMidStreamIsTheLastLine(t *testing.T) {
	t.Parallel()
	url := serveExport(t, func(s auditv1.AuditService_ExportEventsServer) error {
		if err := s.Send(exportItem(1, "{}")); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "database unavailable")
	})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// Streams have their own latency series: they last as long as their client reads.
	_, _, metrics := send(t, http.MethodGet, strings.TrimSuffix(url, "/v1/audit/events:export")+"/metrics", "")
	if !strings.Contains(metrics, `http_request_duration_seconds_count{route="rest_stream"}`) {
		t.Errorf("no rest_stream series in the metrics")
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	var last struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &last) != nil || last.Error == nil ||
		last.Error.Code != int(codes.Unavailable) || last.Error.Message != "database unavailable" {
		t.Fatalf("body:\n%s", body)
	}
}

// When the gateway stops, an export in flight ends at once with a last line saying why (the stop does
// not wait SHUTDOWN_TIMEOUT for it, nor cut it without a word), and the service's stream is cancelled.
func TestExportEndsWhenTheGatewayStops(t *testing.T) {
	t.Parallel()
	ended := make(chan error, 1)
	st := serveExportStack(t, map[string]string{"SHUTDOWN_TIMEOUT": "1m"}, func(s auditv1.AuditService_ExportEventsServer) error {
		if err := s.Send(exportItem(1, "{}")); err != nil {
			return err
		}
		<-s.Context().Done() // an export still under way
		ended <- s.Context().Err()
		return s.Context().Err()
	})
	resp, err := http.Get(st.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	if _, err := body.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- st.stop() }()
	if err := within(t, 20*time.Second, "the gateway's stop (SHUTDOWN_TIMEOUT is 1m)", stopped); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if last := lastLine(t, body); !strings.Contains(last, `"code":14`) || !strings.Contains(last, "the gateway is stopping") {
		t.Fatalf("last line %s", last)
	}
	within(t, 10*time.Second, "the service's stream ending", ended)
}

// A service lost mid-export (stopped, connection reset) ends the stream with UNAVAILABLE "service
// unavailable", as for any call, never with the connection's own message, which names internal addresses.
func TestExportLostServiceIsUnavailable(t *testing.T) {
	t.Parallel()
	sent := make(chan struct{})
	st := serveExportStack(t, nil, func(s auditv1.AuditService_ExportEventsServer) error {
		if err := s.Send(exportItem(1, "{}")); err != nil {
			return err
		}
		close(sent)
		<-s.Context().Done()
		return s.Context().Err()
	})
	resp, err := http.Get(st.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	if _, err := body.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the first message", sent)
	st.service.Stop() // closes the connection under the stream
	last := lastLine(t, body)
	if !strings.Contains(last, `"code":14`) || !strings.Contains(last, `"message":"service unavailable"`) || strings.Contains(last, "127.0.0.1") {
		t.Fatalf("last line %s", last)
	}
}
