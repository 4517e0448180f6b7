package token_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/token/zohotest"
)

// Input that one backend cannot store, or that makes no sense, is refused alike on both with
// InvalidArgument (400), never stored and never an internal error.
func TestBadInputIsInvalidOnBothBackends(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		ctx := context.Background()
		at := func(tm time.Time) *timestamppb.Timestamp { return timestamppb.New(tm) }
		base := func() *tokenv1.CreateConnectionRequest {
			return &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "bad", AccessToken: "a", ExpiresIn: durationpb.New(time.Hour)}
		}
		cases := map[string]func(*tokenv1.CreateConnectionRequest){
			"expire_time year 1":      func(q *tokenv1.CreateConnectionRequest) { q.ExpiresIn, q.ExpireTime = nil, at(time.Time{}) },
			"expire_time before 1970": func(q *tokenv1.CreateConnectionRequest) { q.ExpiresIn, q.ExpireTime = nil, at(time.Unix(-1, 0)) },
			"expire_time year 9999": func(q *tokenv1.CreateConnectionRequest) {
				q.ExpiresIn, q.ExpireTime = nil, at(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
			},
			"expires_in 10,000 years": func(q *tokenv1.CreateConnectionRequest) { q.ExpiresIn = &durationpb.Duration{Seconds: 315_576_000_000} },
			"NUL in access_token":     func(q *tokenv1.CreateConnectionRequest) { q.AccessToken = "a\x00b" },
			"NUL in refresh_token":    func(q *tokenv1.CreateConnectionRequest) { q.RefreshToken = "r\x00" },
			"NUL in token_type":       func(q *tokenv1.CreateConnectionRequest) { q.TokenType = "Bearer\x00" },
			"NUL in a scope":          func(q *tokenv1.CreateConnectionRequest) { q.Scopes = []string{"ok", "x\x00"} },
			"NUL in api_domain":       func(q *tokenv1.CreateConnectionRequest) { q.ApiDomain = "https://x.example/\x00" },
			"NUL in client_id":        func(q *tokenv1.CreateConnectionRequest) { q.ClientId, q.ClientSecret = "c\x00", "s" },
			"NUL in client_secret":    func(q *tokenv1.CreateConnectionRequest) { q.ClientId, q.ClientSecret = "c", "s\x00" },
			"NUL in connection_id":    func(q *tokenv1.CreateConnectionRequest) { q.ConnectionId = "a\x00b" },
			"NUL in provider":         func(q *tokenv1.CreateConnectionRequest) { q.Provider = "zo\x00ho" },
			"non-ASCII connection_id": func(q *tokenv1.CreateConnectionRequest) { q.ConnectionId = "café" },
			"scope over 256 bytes":    func(q *tokenv1.CreateConnectionRequest) { q.Scopes = []string{strings.Repeat("s", 257)} },
		}
		for name, mutate := range cases {
			q := base()
			mutate(q)
			if _, err := r.client.CreateConnection(ctx, q); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
		list, err := r.client.ListConnections(ctx, &tokenv1.ListConnectionsRequest{})
		if err != nil || len(list.GetConnections()) != 0 {
			t.Fatalf("refused input was stored: %v %v", list, err)
		}
		// An expiry in the recent past is fine: the token is simply expired.
		q := base()
		q.ExpiresIn, q.ExpireTime = nil, at(time.Now().Add(-24*time.Hour))
		if _, err := r.client.CreateConnection(ctx, q); err != nil {
			t.Fatalf("expired token refused: %v", err)
		}

		// A forged page token carrying invalid UTF-8 (which PostgreSQL refuses to compare).
		for _, raw := range []string{"v1\x00zoho\x00\xff", "v1\x00\xfe\x00a", "v1\x00zoho\x00a b"} {
			tok := base64.RawURLEncoding.EncodeToString([]byte(raw))
			if _, err := r.client.ListConnections(ctx, &tokenv1.ListConnectionsRequest{PageToken: tok}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("page token %q: %v, want InvalidArgument", raw, err)
			}
		}
		// ExchangeCode checks its strings before calling the provider.
		for name, q := range map[string]*tokenv1.ExchangeCodeRequest{
			"NUL in code":         {Provider: "zoho", ConnectionId: "x", Code: "c\x00"},
			"NUL in redirect_uri": {Provider: "zoho", ConnectionId: "x", Code: "c", RedirectUri: "https://a.example/\x00"},
			"NUL in client id":    {Provider: "zoho", ConnectionId: "x", Code: "c", ClientId: "\x00", ClientSecret: "s"},
		} {
			if _, err := r.client.ExchangeCode(ctx, q); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
	})
}

// What a provider issues is checked like what a caller stores: an answer the service could not store or
// hand out is a bad response, and the stored token stays as it was.
func TestUnusableProviderAnswerKeepsTheStoredToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		r := startReplica(t, config_(t, dbc, z, nil))
		create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
		for _, body := range []string{
			`{"access_token":"1000.at.x","token_type":"Bearer\u0000","expires_in":3600}`,
			`{"access_token":"1000.at.x","api_domain":"https://www.zohoapis.eu/\u0000","expires_in":3600}`,
			"{\"access_token\":\"1000.at.\xff\",\"expires_in\":3600}",
		} {
			z.RespondNext(zohotest.Response{Status: 200, Body: body})
			_, err := r.client.RefreshConnection(context.Background(), &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "bad_response") {
				t.Fatalf("unusable answer %q: %v", body, err)
			}
			got, err := get(r.client, "org-1")
			if err != nil || got.GetAccessToken() != "1000.at.initial-org-1" || got.GetTokenType() != "Bearer" || got.GetApiDomain() != "https://www.zohoapis.eu" {
				t.Fatalf("stored token after an unusable answer: %v %v", got, err)
			}
			// Storing the tokens again ends the backoff the failure set, for the next answer.
			create(t, r.client, "org-1", z.IssueRefreshToken(), time.Hour)
		}
	})
}
