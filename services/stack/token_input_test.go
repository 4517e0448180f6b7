package stack_test

import (
	"encoding/base64"
	"testing"

	"github.com/sergas/core/internal/dbtest"
)

// Through the gateway, on both backends: token input a backend cannot store, or that makes no sense,
// answers 400 and names the field; never 500.
func TestTokenBadInputAnswers400(t *testing.T) {
	backends := map[string]func(t *testing.T) map[string]string{
		"sqlite": func(t *testing.T) map[string]string { return map[string]string{} },
		"postgres": func(t *testing.T) map[string]string {
			url := dbtest.PostgresURL(t)
			return map[string]string{"DATABASE_URL": url, "TOKEN_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
				"AUDIT_DATABASE_SCHEMA": dbtest.NewSchema(t, url), "WEBHOOK_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
				"DATABASE_POOL_SIZE": "2"}
		},
	}
	forged := base64.RawURLEncoding.EncodeToString([]byte("v1\x00zoho\x00\xff"))
	cases := []struct{ name, method, path, body string }{
		{"expire_time year 1", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","expireTime":"0001-01-01T00:00:00Z"}`},
		{"expire_time year 9999", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","expireTime":"9999-12-31T23:59:59Z"}`},
		{"expire_time before 1970", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","expireTime":"1969-12-31T23:59:59Z"}`},
		{"expires_in 10,000 years", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","expiresIn":"315576000000s"}`},
		{"NUL in access token", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a\u0000","expiresIn":"60s"}`},
		{"NUL in refresh token", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","refreshToken":"r\u0000","expiresIn":"60s"}`},
		{"NUL in token type", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","tokenType":"B\u0000","expiresIn":"60s"}`},
		{"NUL in a scope", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","scopes":["s\u0000"],"expiresIn":"60s"}`},
		{"NUL in api domain", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","apiDomain":"https://x.example/\u0000","expiresIn":"60s"}`},
		{"NUL in client id", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","clientId":"c\u0000","clientSecret":"s","expiresIn":"60s"}`},
		{"NUL in client secret", "PUT", "/v1/connections/zoho/c1", `{"accessToken":"a","clientId":"c","clientSecret":"s\u0000","expiresIn":"60s"}`},
		{"NUL in connection id", "GET", "/v1/connections/zoho/a%00b", ``},
		{"NUL in code", "POST", "/v1/connections/zoho/c1:exchange", `{"code":"c\u0000"}`},
		{"forged page token", "GET", "/v1/connections?pageToken=" + forged, ``},
		{"invalid UTF-8 in connection id (PUT)", "PUT", "/v1/connections/zoho/a%FF", `{"accessToken":"a","expiresIn":"60s"}`},
		{"invalid UTF-8 in connection id (GET)", "GET", "/v1/connections/zoho/a%FF/access-token", ``},
		{"invalid UTF-8 in provider", "GET", "/v1/connections/zo%FFho/a", ``},
		{"invalid UTF-8 in provider filter", "GET", "/v1/connections?provider=%FF", ``},
		{"invalid UTF-8 in a body string", "PUT", "/v1/connections/zoho/c1", "{\"accessToken\":\"a\xff\",\"expiresIn\":\"60s\"}"},
	}
	for name, env := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := start(t, env(t))
			for _, c := range cases {
				if code, body := r.do(t, c.method, c.path, c.body); code != 400 {
					t.Errorf("%s: %d %v, want 400", c.name, code, body)
				}
			}
			if code, body := r.do(t, "GET", "/v1/connections", ""); code != 200 || len(body["connections"].([]any)) != 0 {
				t.Fatalf("refused input was stored: %d %v", code, body)
			}
		})
	}
}
