package provider

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/validate"
)

// ZohoAccounts maps Zoho data centres to their accounts servers (Zoho's multi-DC documentation).
var ZohoAccounts = map[string]string{
	"us": "https://accounts.zoho.com", "com": "https://accounts.zoho.com",
	"eu": "https://accounts.zoho.eu",
	"in": "https://accounts.zoho.in",
	"au": "https://accounts.zoho.com.au", "com.au": "https://accounts.zoho.com.au",
	"jp": "https://accounts.zoho.jp",
	"cn": "https://accounts.zoho.com.cn", "com.cn": "https://accounts.zoho.com.cn",
	// Canada is served from zohocloud.ca, not zoho.ca.
	"ca": "https://accounts.zohocloud.ca",
	"sa": "https://accounts.zoho.sa",
	"uk": "https://accounts.zoho.uk",
}

// LoadConfig reads TOKEN_PROVIDERS (names, default "zoho") and, for each, TOKEN_PROVIDER_<NAME>_*.
func LoadConfig(env *config.Env, timeout time.Duration) map[string]*Client {
	out := map[string]*Client{}
	httpClient := &http.Client{Timeout: timeout}
	for _, name := range env.List("TOKEN_PROVIDERS", []string{"zoho"}) {
		if validate.Name("provider", name) != nil {
			env.Fail("TOKEN_PROVIDERS", "must be a comma-separated list of lower-case names")
			continue
		}
		p := "TOKEN_PROVIDER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
		defKind := "oauth2"
		if name == "zoho" {
			defKind = "zoho"
		}
		c := &Client{
			Name:          name,
			Kind:          env.OneOf(p+"TYPE", defKind, "zoho", "oauth2"),
			ClientID:      env.String(p+"CLIENT_ID", ""),
			ClientSecret:  env.String(p+"CLIENT_SECRET", ""),
			RedirectURI:   env.String(p+"REDIRECT_URI", ""),
			BasicAuth:     env.OneOf(p+"AUTH_STYLE", "body", "body", "basic") == "basic",
			HTTP:          httpClient,
			RefreshLimit:  env.Int(p+"REFRESH_LIMIT", 0, 0, 1_000_000),
			RefreshWindow: env.Duration(p+"REFRESH_WINDOW", 10*time.Minute, time.Second, 24*time.Hour),
		}
		if c.Kind == "zoho" {
			accounts := env.String(p+"ACCOUNTS_URL", "")
			if accounts == "" {
				dc := env.String(p+"DATA_CENTER", "us")
				if accounts = ZohoAccounts[dc]; accounts == "" {
					env.Fail(p+"DATA_CENTER", "must be one of us, eu, in, au, jp, cn, ca, sa, uk")
				}
			}
			c.TokenURL = env.String(p+"TOKEN_URL", strings.TrimRight(accounts, "/")+"/oauth/v2/token")
			c.RevokeURL = env.String(p+"REVOKE_URL", strings.TrimRight(accounts, "/")+"/oauth/v2/token/revoke")
			if c.RefreshLimit == 0 {
				c.RefreshLimit = 10 // Zoho: 10 access tokens per refresh token per 10 minutes
			}
		} else {
			c.TokenURL = env.String(p+"TOKEN_URL", "")
			c.RevokeURL = env.String(p+"REVOKE_URL", "")
			if c.TokenURL == "" {
				env.Fail(p+"TOKEN_URL", "is required for an oauth2 provider")
			}
		}
		for _, u := range []struct{ name, v string }{{p + "TOKEN_URL", c.TokenURL}, {p + "REVOKE_URL", c.RevokeURL}} {
			if pu, err := url.Parse(u.v); u.v != "" && (err != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http")) {
				env.Fail(u.name, "must be an absolute http(s) URL")
			}
		}
		out[name] = c
	}
	return out
}

// Describe names the provider's endpoints for the start-up log (no secrets).
func (c *Client) Describe() string {
	return fmt.Sprintf("%s (%s) token=%s client_id_set=%v", c.Name, c.Kind, c.TokenURL, c.ClientID != "")
}
