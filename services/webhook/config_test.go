package webhook

import (
	"slices"
	"strings"
	"testing"

	"github.com/sergas/core/internal/config"
)

func TestLoadConfigChecksTheNewSettings(t *testing.T) {
	env := config.FromMap(map[string]string{"WEBHOOK_HEADER_DENYLIST": "X-Ok,Bad Name", "GRPC_TRUSTED_PROXIES": "example.com",
		"WEBHOOK_ADDRESS_RATE_LIMIT_BURST": "0"})
	LoadConfig(env)
	err := env.Err()
	for _, name := range []string{"WEBHOOK_HEADER_DENYLIST", "GRPC_TRUSTED_PROXIES", "WEBHOOK_ADDRESS_RATE_LIMIT_BURST"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s not reported: %v", name, err)
		}
	}
	env = config.FromMap(map[string]string{"WEBHOOK_HEADER_DENYLIST": "cookie"})
	cfg := LoadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	// The list replaces the default, and a short one still denies HTTP's own credential headers.
	if !slices.Equal(cfg.HeaderDenylist, []string{"Authorization", "Cookie", "Proxy-Authorization"}) {
		t.Fatalf("short deny list: %v", cfg.HeaderDenylist)
	}
}

// A delivery id header's value is stored as the dedupe key, so one on the deny list is refused at start,
// whether it is on the default list or on a configured one, in any case.
func TestDedupeHeaderOnTheDenyListIsRefused(t *testing.T) {
	for _, vars := range []map[string]string{
		{"WEBHOOK_DEDUPE_HEADERS": "Webhook-Id,x-gitlab-token"},
		{"WEBHOOK_DEDUPE_HEADERS": "authorization"},
		{"WEBHOOK_DEDUPE_HEADERS": "X-Delivery", "WEBHOOK_HEADER_DENYLIST": "x-delivery"},
	} {
		env := config.FromMap(vars)
		LoadConfig(env)
		if err := env.Err(); err == nil || !strings.Contains(err.Error(), "WEBHOOK_DEDUPE_HEADERS") {
			t.Errorf("%v: %v", vars, err)
		}
	}
	env := config.FromMap(map[string]string{"WEBHOOK_DEDUPE_HEADERS": "X-Gitlab-Event-UUID"})
	LoadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
}
