package main

import (
	"bytes"
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
	"strings"
	"sync/atomic"
	"time"
)

// Webhook calls: HTTP to the gateway at addr, not gRPC.
//
//   - webhook: POST /webhooks/bench of a 1 KiB JSON body, unique to each call, signed as the bench
//     source's hmac scheme expects (X-Zoho-Signature: hex HMAC-SHA256 of the body with the secret in
//     BENCH_WEBHOOK_SECRET; X-Zoho-Event-Id its own id); anything but 202 (stored) fails the call;
//   - healthz: GET /healthz, which must answer 200.
//
// Each caller keeps its own connection alive, as a sender's HTTP client does.
const (
	webhookSource   = "bench"
	webhookBodySize = 1024
)

func webhookCall(call, addr string, callers int) (func(context.Context) error, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        callers + 16,
		MaxIdleConnsPerHost: callers + 16,
		IdleConnTimeout:     time.Minute,
	}}
	base := "http://" + addr
	switch call {
	case "healthz":
		return func(ctx context.Context) error {
			return expect(ctx, client, http.MethodGet, base+"/healthz", nil, nil, http.StatusOK)
		}, nil
	case "webhook":
		secret := os.Getenv("BENCH_WEBHOOK_SECRET")
		if secret == "" {
			return nil, fmt.Errorf("BENCH_WEBHOOK_SECRET is not set")
		}
		// Ids unique to this process: runs against the same store never repeat a body.
		prefix := fmt.Sprintf("lg-%d-%d", os.Getpid(), rand.Int64())
		var n atomic.Int64
		url := base + "/webhooks/" + webhookSource
		return func(ctx context.Context) error {
			id := fmt.Sprintf("%s-%d", prefix, n.Add(1))
			body := webhookBody(id)
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			h := http.Header{"Content-Type": {"application/json"}, "X-Zoho-Signature": {hex.EncodeToString(mac.Sum(nil))}, "X-Zoho-Event-Id": {id}}
			return expect(ctx, client, http.MethodPost, url, h, body, http.StatusAccepted)
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

// expect makes one request and fails unless it answers want; the body is read whole, so that the
// connection is reused.
func expect(ctx context.Context, c *http.Client, method, url string, h http.Header, body []byte, want int) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d, want %d: %.200s", method, url, resp.StatusCode, want, got)
	}
	return nil
}
