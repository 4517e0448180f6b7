package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sergas/core/services/token/provider"
)

// answering is an OAuth2 token endpoint (a real HTTP server on loopback) that gives every request the
// same canned answer.
func answering(t *testing.T, status int, retryAfter, body string) (*provider.Client, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &provider.Client{Name: "acme", Kind: "oauth2", TokenURL: srv.URL + "/token", HTTP: srv.Client()}, &calls
}

func TestRetryAfterIsHonouredInBothForms(t *testing.T) {
	date := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	cases := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		class      provider.Class
		min, max   time.Duration
	}{
		{"429 seconds", 429, "300", `{"error":"rate_limited"}`, provider.ClassRateLimited, 300 * time.Second, 300 * time.Second},
		{"429 HTTP-date", 429, date(10 * time.Minute), ``, provider.ClassRateLimited, 598 * time.Second, 600 * time.Second},
		{"503 seconds", 503, "120", `{"error":"temporarily_unavailable"}`, provider.ClassTransient, 120 * time.Second, 120 * time.Second},
		{"503 HTTP-date", 503, date(3 * time.Minute), `<html>down</html>`, provider.ClassTransient, 178 * time.Second, 180 * time.Second},
		// Bounded: a server cannot stop refreshes for a day.
		{"429 a day", 429, "86400", ``, provider.ClassRateLimited, provider.MaxRetryAfter, provider.MaxRetryAfter},
		{"503 date in a year", 503, date(365 * 24 * time.Hour), ``, provider.ClassTransient, provider.MaxRetryAfter, provider.MaxRetryAfter},
		// Nothing usable: no delay (the caller's own backoff applies).
		{"429 date in the past", 429, date(-time.Hour), ``, provider.ClassRateLimited, 0, 0},
		{"429 garbage", 429, "soon", ``, provider.ClassRateLimited, 0, 0},
		{"429 negative", 429, "-5", ``, provider.ClassRateLimited, 0, 0},
		{"429 without header", 429, "", ``, provider.ClassRateLimited, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, calls := answering(t, c.status, c.retryAfter, c.body)
			_, err := p.Refresh(context.Background(), "rt-secret", "id", "secret")
			class, wait := provider.ClassOf(err)
			if err == nil || class != c.class || wait < c.min || wait > c.max {
				t.Fatalf("got %v (class %q, retry after %v), want class %q and a delay in [%v, %v]", err, class, wait, c.class, c.min, c.max)
			}
			if calls.Load() != 1 {
				t.Fatalf("%d requests for one refresh", calls.Load())
			}
			if strings.Contains(err.Error(), "rt-secret") {
				t.Fatal("error repeats the refresh token")
			}
		})
	}
}

// Values the service could not store or hand out are a bad response, never tokens.
func TestUnusableTokensAreABadResponse(t *testing.T) {
	for name, body := range map[string]string{
		"NUL in access token":    `{"access_token":"a\u0000b","expires_in":3600}`,
		"invalid UTF-8 in token": "{\"access_token\":\"a\xffb\",\"expires_in\":3600}",
		"huge access token":      `{"access_token":"` + strings.Repeat("a", provider.MaxTokenBytes+1) + `","expires_in":3600}`,
		"NUL in refresh token":   `{"access_token":"a","refresh_token":"r\u0000","expires_in":3600}`,
		"control in token type":  `{"access_token":"a","token_type":"Bea\nrer","expires_in":3600}`,
		"NUL in api domain":      `{"access_token":"a","api_domain":"https://x.example/\u0000","expires_in":3600}`,
		"api domain not a URL":   `{"access_token":"a","api_domain":"zohoapis","expires_in":3600}`,
		"NUL in scope":           `{"access_token":"a","scope":"a b\u0000","expires_in":3600}`,
		"NaN expiry":             `{"access_token":"a","expires_in":"NaN"}`,
		"infinite expiry":        `{"access_token":"a","expires_in":1e400}`,
		"too many scopes":        `{"access_token":"a","scope":"` + strings.Repeat("s ", provider.MaxScopes+1) + `","expires_in":3600}`,
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := answering(t, 200, "", body)
			tok, err := p.Refresh(context.Background(), "rt", "id", "secret")
			if class, _ := provider.ClassOf(err); err == nil || class != provider.ClassBadResponse {
				t.Fatalf("got %+v, %v; want a bad response", tok, err)
			}
		})
	}
	// An absurdly long lifetime is capped, not overflowed into the past.
	p, _ := answering(t, 200, "", `{"access_token":"a","expires_in":1e30}`)
	tok, err := p.Refresh(context.Background(), "rt", "id", "secret")
	if err != nil || tok.ExpiresIn != provider.MaxExpiresIn {
		t.Fatalf("huge expires_in: %+v %v", tok, err)
	}
}
