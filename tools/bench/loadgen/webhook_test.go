package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// The webhook call sends 1 KiB bodies, each unique, signed as an hmac source of the environment form
// checks them, over kept-alive connections; any answer but 202 fails the call.
func TestWebhookCallSignsUniqueBodies(t *testing.T) {
	const secret = "bench-secret"
	t.Setenv("BENCH_WEBHOOK_SECRET", secret)
	var mu sync.Mutex
	seen := map[string]bool{}
	answer := http.StatusAccepted
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/webhooks/bench":
			w.WriteHeader(http.StatusNotFound)
		case len(body) != webhookBodySize || seen[string(body)] || r.Header.Get("X-Zoho-Event-Id") == "":
			w.WriteHeader(http.StatusBadRequest)
		case !hmac.Equal([]byte(r.Header.Get("X-Zoho-Signature")), []byte(hex.EncodeToString(mac.Sum(nil)))):
			w.WriteHeader(http.StatusUnauthorized)
		default:
			seen[string(body)] = true
			w.WriteHeader(answer)
			_, _ = w.Write([]byte(`{"eventId":"x","duplicate":false}`))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	call, err := webhookCall("webhook", addr, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := call(context.Background()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	mu.Lock()
	answer = http.StatusOK // a duplicate: not a stored delivery
	mu.Unlock()
	if err := call(context.Background()); err == nil || !strings.Contains(err.Error(), "HTTP 200") {
		t.Fatalf("a 200 answer: %v, want the call to fail", err)
	}
	health, err := webhookCall("healthz", addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := health(context.Background()); err == nil {
		t.Fatal("GET /healthz answered 404 and the call passed")
	}
}
