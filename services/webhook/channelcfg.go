package webhook

import (
	"net/url"
	"strings"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/validate"
)

// ChannelConfig is how the service manages Zoho CRM notification channels.
type ChannelConfig struct {
	// PublicURL (WEBHOOK_PUBLIC_URL) is the gateway's address as Zoho reaches it: a channel created
	// without a notify_url is notified at PublicURL + "/webhooks/" + source.
	PublicURL string
	// TTL (WEBHOOK_ZOHO_CHANNEL_TTL) is the expiry asked of Zoho at each enable and renewal.
	TTL time.Duration
	// RenewBefore (WEBHOOK_ZOHO_CHANNEL_RENEW_BEFORE): a channel is renewed once it expires within this.
	RenewBefore time.Duration
	// CheckInterval (WEBHOOK_ZOHO_CHANNEL_CHECK_INTERVAL) is how often the renewer looks for channels due.
	CheckInterval time.Duration
	// Timeout (WEBHOOK_ZOHO_TIMEOUT) bounds each call to Zoho's API.
	Timeout time.Duration
	// Keys (WEBHOOK_ENCRYPTION_KEYS) seal the channels' tokens; in development an empty spec uses a key
	// kept in DATA_DIR/dev-webhook-key.
	Keys       string
	DevKeyFile string
}

// maxZohoChannelTTL is the longest expiry Zoho accepts for a channel (one week from now).
const maxZohoChannelTTL = 7 * 24 * time.Hour

func loadChannelConfig(env *config.Env, dev bool) ChannelConfig {
	c := ChannelConfig{
		PublicURL:     strings.TrimRight(env.String("WEBHOOK_PUBLIC_URL", ""), "/"),
		TTL:           env.Duration("WEBHOOK_ZOHO_CHANNEL_TTL", 24*time.Hour, 10*time.Minute, maxZohoChannelTTL),
		RenewBefore:   env.Duration("WEBHOOK_ZOHO_CHANNEL_RENEW_BEFORE", 12*time.Hour, time.Minute, maxZohoChannelTTL),
		CheckInterval: env.Duration("WEBHOOK_ZOHO_CHANNEL_CHECK_INTERVAL", time.Minute, time.Second, time.Hour),
		Timeout:       env.Duration("WEBHOOK_ZOHO_TIMEOUT", 10*time.Second, time.Second, time.Minute),
		Keys:          env.String("WEBHOOK_ENCRYPTION_KEYS", ""),
	}
	if c.PublicURL != "" {
		// "/webhooks/<source>" is appended: a query or fragment would swallow it, and Zoho must not be
		// given credentials (the Zoho client refuses to send them).
		u, err := url.Parse(c.PublicURL)
		if validate.HTTPURL("WEBHOOK_PUBLIC_URL", c.PublicURL) != nil || err != nil || u.User != nil || u.RawQuery != "" ||
			u.ForceQuery || u.Fragment != "" || strings.Contains(c.PublicURL, "#") {
			env.Fail("WEBHOOK_PUBLIC_URL", "must be an http or https URL without user information, query or fragment (the gateway's address as Zoho reaches it)")
		}
	}
	if c.RenewBefore >= c.TTL {
		env.Fail("WEBHOOK_ZOHO_CHANNEL_RENEW_BEFORE", "must be shorter than WEBHOOK_ZOHO_CHANNEL_TTL, or every channel would be renewed at every check")
	}
	if c.Keys == "" && dev {
		c.DevKeyFile = env.String("DATA_DIR", "./data") + "/dev-webhook-key"
	}
	return c
}
