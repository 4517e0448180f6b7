package webhook

import (
	"testing"

	"github.com/sergas/core/internal/config"
)

// WEBHOOK_PUBLIC_URL is the base of every default notify URL: one the Zoho client would refuse (user
// information, a fragment, a query before "/webhooks/…") is refused at start, not at every CreateChannel.
func TestPublicURLZohoCannotTakeIsRefusedAtStart(t *testing.T) {
	for _, u := range []string{"https://user:pw@gw.example", "https://gw.example/#x", "https://gw.example/?a=b"} {
		env := config.NewEnv(func(k string) (string, bool) {
			if k == "WEBHOOK_PUBLIC_URL" {
				return u, true
			}
			return "", false
		})
		loadChannelConfig(env, false)
		if env.Err() == nil {
			t.Errorf("WEBHOOK_PUBLIC_URL=%s accepted", u)
		}
	}
	env := config.NewEnv(func(k string) (string, bool) {
		if k == "WEBHOOK_PUBLIC_URL" {
			return "https://gw.example/base/", true
		}
		return "", false
	})
	if c := loadChannelConfig(env, false); env.Err() != nil || c.PublicURL != "https://gw.example/base" {
		t.Fatalf("a plain URL: %q %v", c.PublicURL, env.Err())
	}
}
