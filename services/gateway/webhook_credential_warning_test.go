package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials/insecure"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/testutil"
)

// TestWarnsWithoutWebhookCredential: outside development a gateway without GATEWAY_WEBHOOK_API_KEY says
// at start that deliveries will be refused unless its certificate carries webhook:ingest; with a key it
// does not.
func TestWarnsWithoutWebhookCredential(t *testing.T) {
	const warning = "GATEWAY_WEBHOOK_API_KEY is not set"
	for _, c := range []struct {
		key  string
		warn bool
	}{{"", true}, {"sgk_gw.secret", false}} {
		env := map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "TOKEN_GRPC_ENDPOINT": "127.0.0.1:1",
			"AUDIT_GRPC_ENDPOINT": "127.0.0.1:1", "WEBHOOK_GRPC_ENDPOINT": "127.0.0.1:1"}
		if c.key != "" {
			env["GATEWAY_WEBHOOK_API_KEY"] = c.key
		}
		e := config.FromMap(env)
		cfg := LoadConfig(e)
		if err := e.Err(); err != nil {
			t.Fatal(err)
		}
		logs := &testutil.LogBuffer{}
		g, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)), insecure.NewCredentials(), nil)
		if err != nil {
			t.Fatal(err)
		}
		g.Close()
		if got := strings.Contains(logs.String(), warning); got != c.warn {
			t.Errorf("key %q: warned %v, want %v:\n%s", c.key, got, c.warn, logs.String())
		}
	}
}
