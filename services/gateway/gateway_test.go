package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

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
