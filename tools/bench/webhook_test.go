package main

import (
	"testing"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/gateway"
	"github.com/sergas/core/services/webhook"
)

// The bench's webhook service and gateway configurations are accepted as production configurations
// (a mistake would only show when a bench run fails to start), on both backends.
func TestWebhookBenchConfigurationsLoad(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "postgres://bench@127.0.0.1:1/bench")
	s, err := newWebhookSetup()
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		env, err := webhookServiceEnv(backend, s, t.TempDir(), "bench_webhook_test")
		if err != nil {
			t.Fatal(err)
		}
		e := config.FromMap(env)
		if cfg := webhook.LoadConfig(e); len(cfg.Sources) != 1 || cfg.Sources[0].Scheme != webhook.SchemeHMAC {
			t.Fatalf("%s: sources %+v, want the one hmac source", backend, cfg.Sources)
		}
		if err := e.Err(); err != nil {
			t.Fatalf("%s webhook service: %v", backend, err)
		}
	}
	e := config.FromMap(gatewayEnv(s, t.TempDir(), "127.0.0.1:50053"))
	if cfg := gateway.LoadConfig(e); cfg.WebhookCredential == nil || cfg.WebhookCredential() != s.key {
		t.Fatal("the gateway does not present the bench key")
	}
	if err := e.Err(); err != nil {
		t.Fatalf("gateway: %v", err)
	}
}
