package token_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/token/zohotest"
)

// Every provider call names itself when it fails: an exchange or a revocation never says "refresh".
func TestProviderFailuresNameTheCall(t *testing.T) {
	z := zohotest.New(t)
	dbc := dbtest.Config(t, db.SQLite)
	r := startReplica(t, config_(t, dbc, z, nil))
	ctx := context.Background()
	exchange := func() error {
		_, err := r.client.ExchangeCode(ctx, &tokenv1.ExchangeCodeRequest{Provider: "zoho", ConnectionId: "org-1", Code: z.IssueCode()})
		return err
	}
	revoke := func() error {
		create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
		_, err := r.client.RevokeConnection(ctx, &tokenv1.RevokeConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
		return err
	}
	cases := []struct {
		name string
		call func() error
		fail func()
		code codes.Code
		want []string
	}{
		{"exchange, provider down", exchange, func() { z.FailNext(zohotest.ServerError) }, codes.Unavailable,
			[]string{"exchanging the authorization code", `"zoho"`, "transient", "http_500"}},
		{"exchange, rate limited", exchange, func() { z.RespondNext(zohotest.Response{Status: 429, Header: map[string]string{"Retry-After": "30"}}) },
			codes.ResourceExhausted, []string{"exchanging the authorization code", "rate limiting"}},
		{"exchange, garbage", exchange, func() { z.FailNext(zohotest.Garbage) }, codes.Unavailable,
			[]string{"exchanging the authorization code", "bad_response"}},
		{"exchange, wrong client", exchange, func() { z.RespondNext(zohotest.Response{Status: 400, Body: `{"error":"invalid_client"}`}) },
			codes.FailedPrecondition, []string{"client credentials", "exchanging the code"}},
		{"revoke, provider down", revoke, func() { z.FailNext(zohotest.ServerError) }, codes.Unavailable,
			[]string{"revoking the token", `"zoho"`, "transient"}},
		{"revoke, rate limited", revoke, func() { z.RespondNext(zohotest.Response{Status: 429}) }, codes.ResourceExhausted,
			[]string{"revoking the token", "rate limiting"}},
		{"revoke, wrong client", revoke, func() { z.RespondNext(zohotest.Response{Status: 401, Body: `{"error":"invalid_client"}`}) },
			codes.FailedPrecondition, []string{"client credentials", "revoking the token"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fail()
			err := c.call()
			msg := status.Convert(err).Message()
			if status.Code(err) != c.code || strings.Contains(strings.ToLower(msg), "refresh") {
				t.Fatalf("got %v, want %v naming the call, never \"refresh\"", err, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
	// A revocation the provider refused left the connection in place.
	if _, err := r.client.GetConnection(ctx, &tokenv1.GetConnectionRequest{Provider: "zoho", ConnectionId: "org-1"}); err != nil {
		t.Fatalf("connection gone after failed revocations: %v", err)
	}
}

// A provider without a revoke endpoint cannot revoke: that is a configuration problem to fix, not an
// outage to retry.
func TestRevokeWithoutRevokeURLSaysWhatToConfigure(t *testing.T) {
	z := zohotest.New(t)
	r := startReplica(t, config_(t, dbtest.Config(t, db.SQLite), z, map[string]string{
		"TOKEN_PROVIDERS": "zoho,acme", "TOKEN_PROVIDER_ACME_TOKEN_URL": z.URL + "/oauth/v2/token"}))
	ctx := context.Background()
	if _, err := r.client.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "acme", ConnectionId: "c1", AccessToken: "a",
		RefreshToken: "r", ExpiresIn: durationpb.New(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, err := r.client.RevokeConnection(ctx, &tokenv1.RevokeConnectionRequest{Provider: "acme", ConnectionId: "c1"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "TOKEN_PROVIDER_ACME_REVOKE_URL") ||
		strings.Contains(err.Error(), "refresh") {
		t.Fatalf("revoke without a revoke URL: %v", err)
	}
}

// A refresh refused for the client credentials says so, not that the refresh token was rejected.
func TestInvalidClientOnRefreshNamesTheCredentials(t *testing.T) {
	z := zohotest.New(t)
	r := startReplica(t, config_(t, dbtest.Config(t, db.SQLite), z, nil))
	create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
	z.RespondNext(zohotest.Response{Status: 200, Body: `{"error":"invalid_client"}`})
	_, err := r.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "client credentials") ||
		!strings.Contains(err.Error(), "TOKEN_PROVIDER_ZOHO_CLIENT_ID") || strings.Contains(err.Error(), "refresh token") {
		t.Fatalf("invalid_client on refresh: %v", err)
	}
}
