package token_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/zohotest"
)

// A provider answering 429 or 503 with Retry-After (in seconds or as an HTTP date) pauses refreshes at
// least that long, leaves the stored token as it was, and is classified as a rate limit or an outage.
func TestProviderRetryAfterPausesRefreshes(t *testing.T) {
	date := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	cases := []struct {
		name       string
		status     int
		retryAfter func() string
		wait       time.Duration // at least this long (an HTTP date has one-second resolution)
		code       codes.Code
		class      string
	}{
		{"429 seconds", 429, func() string { return "420" }, 420 * time.Second, codes.ResourceExhausted, "rate_limited"},
		{"429 HTTP-date", 429, func() string { return date(20 * time.Minute) }, 20*time.Minute - 2*time.Second, codes.ResourceExhausted, "rate_limited"},
		{"503 seconds", 503, func() string { return "240" }, 240 * time.Second, codes.Unavailable, "transient"},
		{"503 HTTP-date", 503, func() string { return date(15 * time.Minute) }, 15*time.Minute - 2*time.Second, codes.Unavailable, "transient"},
	}
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		st := openStore(t, dbc)
		ctx := context.Background()
		for _, c := range cases {
			create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour) // fresh tokens, no backoff
			before, err := st.ConnectionGet(ctx, store.Key{Provider: "zoho", ConnectionID: "org-1"})
			if err != nil {
				t.Fatal(err)
			}
			calls := z.Refreshes()
			z.RespondNext(zohotest.Response{Status: c.status, Header: map[string]string{"Retry-After": c.retryAfter()}, Body: `{}`})
			start := time.Now()
			_, err = r.client.RefreshConnection(ctx, &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
			if status.Code(err) != c.code {
				t.Fatalf("%s: %v, want %v", c.name, err, c.code)
			}
			if wait, ok := ratelimit.RetryAfter(err); !ok || wait < c.wait {
				t.Fatalf("%s: answer says retry after %v, want at least %v", c.name, wait, c.wait)
			}
			after, err := st.ConnectionGet(ctx, store.Key{Provider: "zoho", ConnectionID: "org-1"})
			if err != nil {
				t.Fatal(err)
			}
			if after.NextRefreshTime.Before(start.Add(c.wait)) || after.LastRefreshError != c.class || after.Status != store.StatusActive ||
				string(after.AccessToken) != string(before.AccessToken) || string(after.RefreshToken) != string(before.RefreshToken) ||
				!after.ExpireTime.Equal(before.ExpireTime) {
				t.Fatalf("%s: stored after the failure: next refresh %v (want ≥ %v), class %q, status %v, tokens kept %v",
					c.name, after.NextRefreshTime, start.Add(c.wait), after.LastRefreshError, after.Status,
					string(after.AccessToken) == string(before.AccessToken))
			}
			// Inside the pause nothing reaches the provider, and the still-valid token is served.
			if _, err := r.client.RefreshConnection(ctx, &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); status.Code(err) != c.code {
				t.Fatalf("%s: forced refresh during the pause: %v", c.name, err)
			}
			if got, err := get(r.client, "org-1"); err != nil || got.GetAccessToken() != "1000.at.initial-org-1" {
				t.Fatalf("%s: token during the pause: %v %v", c.name, got, err)
			}
			if n := z.Refreshes() - calls; n != 1 {
				t.Fatalf("%s: %d provider calls, want 1", c.name, n)
			}
		}
	})
}
