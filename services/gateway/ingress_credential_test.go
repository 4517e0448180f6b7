package gateway

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/testutil"
)

// authSeen is a webhook stand-in that keeps the authorization metadata of each Ingest.
type authSeen struct {
	webhookv1.UnimplementedWebhookServiceServer
	mu   sync.Mutex
	seen []string
}

func (a *authSeen) Ingest(ctx context.Context, _ *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	a.mu.Lock()
	a.seen = append(a.seen, strings.Join(md.Get("authorization"), "|"))
	a.mu.Unlock()
	return &webhookv1.IngestResponse{EventId: "e1"}, nil
}

func (a *authSeen) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[len(a.seen)-1]
}

// The gateway presents its own key to Ingest, never the sender's Authorization header, and picks up a
// rotated key file without a restart.
func TestIngestCarriesTheGatewaysKey(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := &authSeen{}
	srv := grpc.NewServer()
	webhookv1.RegisterWebhookServiceServer(srv, seen)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("sgk_gateway.first-key-aaaaaaaaaaaa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := serveHTTP(t, newGateway(t, map[string]string{"GATEWAY_WEBHOOK_API_KEY_FILE": keyFile}, lis.Addr().String(), nil))
	if code, _, body := send(t, "POST", base+"/webhooks/zoho", "{}", "Authorization", "Bearer sender-secret"); code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	if got := seen.last(); got != "Bearer sgk_gateway.first-key-aaaaaaaaaaaa" {
		t.Fatalf("authorization sent to Ingest: %q", got)
	}
	if err := os.WriteFile(keyFile, []byte("sgk_gateway.second-key-bbbbbbbbbbbbbb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file is checked at most once a second: later deliveries carry the new key.
	testutil.Eventually(t, 10*time.Second, "the rotated key on Ingest", func() bool {
		send(t, "POST", base+"/webhooks/zoho", "{}")
		return seen.last() == "Bearer sgk_gateway.second-key-bbbbbbbbbbbbbb"
	})
}

func TestWebhookCredentialConfig(t *testing.T) {
	env := config.FromMap(map[string]string{"GATEWAY_WEBHOOK_API_KEY": "k", "GATEWAY_WEBHOOK_API_KEY_FILE": "/x"})
	LoadConfig(env)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "GATEWAY_WEBHOOK_API_KEY_FILE") {
		t.Errorf("both set: %v", err)
	}
	env = config.FromMap(map[string]string{"GATEWAY_WEBHOOK_API_KEY_FILE": "/nonexistent/secret-path"})
	LoadConfig(env)
	if err := env.Err(); err == nil || strings.Contains(err.Error(), "secret-path") {
		t.Errorf("unreadable key file: %v", err)
	}
	// Development: the development key, once a service has created it.
	dir := t.TempDir()
	env = config.FromMap(map[string]string{"SERGAS_ENV": "development", "DATA_DIR": dir})
	c := LoadConfig(env)
	if c.WebhookCredential() != "" {
		t.Fatal("a key before the file exists")
	}
	if err := os.WriteFile(filepath.Join(dir, "dev-api-key"), []byte("sgk_dev.dev-key-cccccccccccccccc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := c.WebhookCredential(); got != "sgk_dev.dev-key-cccccccccccccccc" {
		t.Fatalf("development key: %q", got)
	}
	if c := LoadConfig(config.FromMap(nil)); c.WebhookCredential != nil {
		t.Fatal("production without a key must not invent one")
	}
}
