package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Webhook calls: HTTP/1.1 to the gateway at addr, not gRPC.
//
//   - webhook: POST /webhooks/bench of a 1 KiB JSON body, unique to each call, signed as the bench
//     source's hmac scheme expects (X-Zoho-Signature: hex HMAC-SHA256 of the body with the secret in
//     BENCH_WEBHOOK_SECRET; X-Zoho-Event-Id its own id); anything but 202 (stored) fails the call;
//   - healthz: GET /healthz, which must answer 200.
//
// Each caller keeps a connection alive, as a sender's HTTP client does. Requests are written and
// answers read on the connection directly (net/http's parser, not its client): the load generator
// shares the machine's cores with the servers, and the client's own goroutines and channels would cost
// about as much CPU per call as the gateway does.
const (
	webhookSource   = "bench"
	webhookBodySize = 1024
)

func webhookCall(call, addr string, callers int) (func(context.Context) error, error) {
	conns := &connPool{addr: addr, idle: make(chan *httpConn, callers+16)}
	switch call {
	case "healthz":
		req := []byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
		return func(ctx context.Context) error { return conns.expect(ctx, req, http.StatusOK) }, nil
	case "webhook":
		secret := os.Getenv("BENCH_WEBHOOK_SECRET")
		if secret == "" {
			return nil, fmt.Errorf("BENCH_WEBHOOK_SECRET is not set")
		}
		// Ids unique to this process: runs against the same store never repeat a body.
		prefix := fmt.Sprintf("lg-%d-%d", os.Getpid(), rand.Int64())
		var n atomic.Int64
		head := "POST /webhooks/" + webhookSource + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n"
		return func(ctx context.Context) error {
			id := fmt.Sprintf("%s-%d", prefix, n.Add(1))
			body := webhookBody(id)
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			req := make([]byte, 0, len(head)+200+len(body))
			req = append(req, head...)
			req = append(req, "X-Zoho-Signature: "+hex.EncodeToString(mac.Sum(nil))+"\r\nX-Zoho-Event-Id: "+id+
				"\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"...)
			req = append(req, body...)
			return conns.expect(ctx, req, http.StatusAccepted)
		}, nil
	}
	return nil, fmt.Errorf("unknown -call %q", call)
}

// webhookBody is a JSON body of exactly webhookBodySize bytes that names id.
func webhookBody(id string) []byte {
	head := `{"id":"` + id + `","module":"Deals","operation":"update","pad":"`
	tail := `"}`
	return []byte(head + strings.Repeat("x", max(0, webhookBodySize-len(head)-len(tail))) + tail)
}

// connPool keeps idle kept-alive connections to addr.
type connPool struct {
	addr string
	idle chan *httpConn
}

type httpConn struct {
	c net.Conn
	r *bufio.Reader
}

// expect sends the request req on an idle connection (or a new one) and fails unless it answers want.
// The answer is read whole, so that the connection can be used again; one that failed is closed.
func (p *connPool) expect(ctx context.Context, req []byte, want int) error {
	var hc *httpConn
	select {
	case hc = <-p.idle:
	default:
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return err
		}
		hc = &httpConn{c: c, r: bufio.NewReaderSize(c, 8<<10)}
	}
	if d, ok := ctx.Deadline(); ok {
		_ = hc.c.SetDeadline(d)
	}
	status, msg, err := hc.roundTrip(req)
	if err != nil {
		hc.c.Close()
		return err
	}
	select {
	case p.idle <- hc:
	default:
		hc.c.Close()
	}
	if status != want {
		return fmt.Errorf("HTTP %d, want %d: %.200s", status, want, msg)
	}
	return nil
}

func (hc *httpConn) roundTrip(req []byte) (int, []byte, error) {
	if _, err := hc.c.Write(req); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(hc.r, nil)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	if resp.Close {
		return resp.StatusCode, body, fmt.Errorf("the server closed the connection (HTTP %d)", resp.StatusCode)
	}
	return resp.StatusCode, body, nil
}
