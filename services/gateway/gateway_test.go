package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"

	"github.com/sergas/core/internal/config"
)

// A gateway whose services are down stays alive (/healthz) but is not ready (/readyz 503), and REST
// calls answer 503 rather than hanging or crashing.
func TestServicesDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cfg := LoadConfig(config.FromMap(map[string]string{
		"TOKEN_GRPC_ENDPOINT": closed, "AUDIT_GRPC_ENDPOINT": closed, "WEBHOOK_GRPC_ENDPOINT": closed,
	}))
	g, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), insecure.NewCredentials(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	code, body := get("/readyz")
	if code != 503 || body["ready"] != false {
		t.Errorf("readyz %d %v", code, body)
	}
	if services, _ := body["services"].(map[string]any); services["sergas.token.v1.TokenService"] != "UNREACHABLE" {
		t.Errorf("readyz detail %v", body)
	}
	if code, _ := get("/v1/connections"); code != 503 {
		t.Errorf("REST with token service down: %d, want 503", code)
	}
}

// A client that never finishes its request headers is disconnected after GATEWAY_READ_HEADER_TIMEOUT.
func TestSlowHeadersAreCutOff(t *testing.T) {
	cfg := LoadConfig(config.FromMap(map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "GATEWAY_READ_HEADER_TIMEOUT": "1s"}))
	g, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), insecure.NewCredentials(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(t.Context())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, func(a string) { addr <- a }) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", <-addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil { // no final blank line
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(conn)
	if elapsed := time.Since(start); err != nil || elapsed > 5*time.Second {
		t.Fatalf("slow client kept for %v (err %v)", elapsed, err)
	}
}
