package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/gateway"
)

// gatewayTimeout is the request timeout of the gateway in front of the streaming test: the shortest the
// configuration allows, so that an export can outlast it quickly. The other tests keep the default
// (30 s): under -race on a loaded machine an ordinary call can take longer than a second.
const gatewayTimeout = time.Second

// serveGateway runs the real gateway (its Serve: timeouts, middlewares) on loopback in front of the audit
// service at auditAddr, with the default request timeout, and returns its base URL.
func serveGateway(t *testing.T, auditAddr string) string {
	t.Helper()
	return serveGatewayTimeout(t, auditAddr, 30*time.Second)
}

// serveGatewayTimeout is serveGateway with the given GATEWAY_REQUEST_TIMEOUT.
func serveGatewayTimeout(t *testing.T, auditAddr string, timeout time.Duration) string {
	t.Helper()
	cfg := gateway.LoadConfig(config.FromMap(map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0",
		"GATEWAY_REQUEST_TIMEOUT": timeout.String(), "AUDIT_GRPC_ENDPOINT": auditAddr,
		"TOKEN_GRPC_ENDPOINT": "127.0.0.1:1", "WEBHOOK_GRPC_ENDPOINT": "127.0.0.1:1"}))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.New(context.Background(), cfg, log, insecure.NewCredentials(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	addr, served := make(chan string, 1), make(chan error, 1)
	go func() { served <- g.Serve(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() { stop(); <-served; g.Close() })
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-served:
		t.Fatalf("gateway: %v", err)
	}
	return ""
}

// The REST export is streamed end to end (service, gateway, HTTP): its first lines reach the client while
// the service is still waiting to read the next page, and an export that lasts longer than the gateway's
// request timeout, and than the HTTP server's write timeout derived from it, completes whole.
func TestExportOverRESTIsStreamed(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		c := &clock{}
		s.now = c.now
		const n = exportPageEvents + 10
		record(t, s, c, n, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) })
		b := &blockingStore{Store: st, release: make(chan struct{}), pages: make(chan int64, 10), ended: make(chan error, 1)}
		s.store = b
		base := serveGatewayTimeout(t, grpcServe(t, s), gatewayTimeout)

		start := time.Now()
		resp, err := http.Get(base + "/v1/audit/events:export")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		select {
		case <-b.pages: // the service now waits before its second page
		case <-time.After(10 * time.Second):
			t.Fatal("the second page was never read")
		}
		lines := bufio.NewScanner(resp.Body)
		lines.Buffer(nil, 1<<20)
		got := make(chan bool, 1)
		go func() { got <- lines.Scan() }()
		select {
		case ok := <-got:
			if !ok {
				t.Fatalf("no first line: %v", lines.Err())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the first line did not arrive while the export was under way: the answer is buffered")
		}
		// The precondition is time itself: hold the export past the request timeout and the HTTP server's
		// write timeout (the request timeout plus 5 s).
		hold := gatewayTimeout + 5*time.Second + 500*time.Millisecond
		<-time.After(time.Until(start.Add(hold)))
		close(b.release)
		count := 0
		for {
			var item struct {
				Result struct {
					Event struct{ Sequence string } `json:"event"`
				} `json:"result"`
				Error json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(lines.Bytes(), &item); err != nil || item.Error != nil {
				t.Fatalf("line %d: %s", count+1, lines.Text())
			}
			count++
			if item.Result.Event.Sequence != strconv.Itoa(count) {
				t.Fatalf("line %d holds sequence %q", count, item.Result.Event.Sequence)
			}
			if !lines.Scan() {
				break
			}
		}
		if err := lines.Err(); err != nil || count != n {
			t.Fatalf("%d lines of %d: %v", count, n, err)
		}
		if took := time.Since(start); took < hold {
			t.Fatalf("took %s, held %s", took, hold)
		}
	})
}
