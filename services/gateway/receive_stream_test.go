package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// fakeReceive stands in for the webhook service's Receive.
type fakeReceive struct {
	webhookv1.UnimplementedWebhookServiceServer
	receive func(*webhookv1.ReceiveRequest, grpc.ServerStreamingServer[webhookv1.ReceiveResponse]) error
}

func (f fakeReceive) Receive(req *webhookv1.ReceiveRequest, s grpc.ServerStreamingServer[webhookv1.ReceiveResponse]) error {
	return f.receive(req, s)
}

func leased(ackID string) *webhookv1.ReceiveResponse {
	return &webhookv1.ReceiveResponse{Deliveries: []*webhookv1.LeasedDelivery{{AckId: ackID}}}
}

// A consumer's Receive stream through the gateway (POST /v1/webhook/deliveries:receive) is a streaming
// route: each message reaches the client as an NDJSON line when sent, and the stream lives past
// GATEWAY_REQUEST_TIMEOUT and the server's write timeout derived from it (a consumer holds its stream
// open for hours), instead of being buffered and cut with 503.
func TestReceiveStreamOutlivesTheRequestTimeout(t *testing.T) {
	t.Parallel()
	firstRead := make(chan struct{})
	gotReq := make(chan *webhookv1.ReceiveRequest, 1)
	// The server's WriteTimeout is the request timeout plus 5 s: outlast it.
	const hold = 1*time.Second + 5*time.Second + 500*time.Millisecond
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	webhookv1.RegisterWebhookServiceServer(srv, fakeReceive{receive: func(req *webhookv1.ReceiveRequest, s grpc.ServerStreamingServer[webhookv1.ReceiveResponse]) error {
		gotReq <- req
		if err := s.Send(leased("first")); err != nil {
			return err
		}
		select {
		case <-firstRead:
		case <-s.Context().Done():
			return s.Context().Err()
		}
		select { // the precondition is time itself: the stream must outlast every timeout
		case <-time.After(hold):
		case <-s.Context().Done():
			return s.Context().Err()
		}
		return s.Send(leased("second"))
	}})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	closed := closedAddr(t)
	g := newGateway(t, map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "GATEWAY_REQUEST_TIMEOUT": "1s",
		"TOKEN_GRPC_ENDPOINT": closed, "AUDIT_GRPC_ENDPOINT": closed}, lis.Addr().String(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() { cancel(); <-served })
	url := "http://" + within(t, 10*time.Second, "the gateway to listen", addr) + "/v1/webhook/deliveries:receive"

	start := time.Now()
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"subscription_id":"0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d","consumer":"agent-1","max_in_flight":5}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ndjson {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	req := within(t, 10*time.Second, "the request to reach the service", gotReq)
	if req.GetConsumer() != "agent-1" || req.GetMaxInFlight() != 5 {
		t.Fatalf("the service got %v", req)
	}
	lines := bufio.NewScanner(resp.Body)
	ackID := func() string {
		var line struct {
			Result *struct {
				Deliveries []struct {
					AckID string `json:"ackId"`
				} `json:"deliveries"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil || line.Result == nil || len(line.Result.Deliveries) != 1 {
			t.Fatalf("line %q", lines.Text())
		}
		return line.Result.Deliveries[0].AckID
	}
	lineRead := make(chan bool, 1)
	go func() { lineRead <- lines.Scan() }()
	if !within(t, 10*time.Second, "the first line", lineRead) || ackID() != "first" {
		t.Fatalf("no first line (%v): the stream was buffered", lines.Err())
	}
	close(firstRead)
	if !lines.Scan() || ackID() != "second" {
		t.Fatalf("the stream was cut before its second message: %v", lines.Err())
	}
	if took := time.Since(start); took < hold {
		t.Fatalf("the stream took %s, less than the %s it was held", took, hold)
	}
	if lines.Scan() {
		t.Fatalf("unexpected line after the stream ended: %s", lines.Text())
	}
}
