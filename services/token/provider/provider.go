// Package provider talks to OAuth2 token endpoints: Zoho's accounts server (per data centre) and any
// RFC 6749 provider. It classifies every failure so that callers know whether to retry, back off or ask a
// person to authorise again, and it never puts token material or response bodies in errors.
package provider

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sergas/core/internal/retryafter"
	"github.com/sergas/core/internal/validate"
)

// Bounds on what a token endpoint may issue: anything beyond them is a bad response, never stored. They
// are the same limits the token service applies to tokens a caller stores.
const (
	MaxTokenBytes = 8 << 10
	MaxScopes     = 100
	MaxScopeBytes = 256
	// MaxExpiresIn caps a token's lifetime; a longer expires_in is read as this (an absurd number must
	// not overflow a time.Duration or produce a time the database cannot store).
	MaxExpiresIn = 100 * 365 * 24 * time.Hour
	// MaxRetryAfter caps how long a provider's Retry-After can pause refreshes: long enough to honour any
	// sensible rate limit, short enough that a misconfigured server cannot stop refreshes for days.
	MaxRetryAfter = time.Hour
)

// Tokens are what a token endpoint issued.
type Tokens struct {
	AccessToken  string
	RefreshToken string // empty when the provider did not send (or rotate) one
	TokenType    string
	APIDomain    string
	ExpiresIn    time.Duration
	Scopes       []string
}

// Class says what a failure means for the caller.
type Class string

// Failure classes.
const (
	// ClassInvalidGrant: the refresh token (or code) is revoked, expired or unknown: re-authorise.
	ClassInvalidGrant Class = "invalid_grant"
	// ClassInvalidClient: the client id or secret is wrong: fix configuration, then re-authorise.
	ClassInvalidClient Class = "invalid_client"
	// ClassRateLimited: the provider refuses more tokens for now: wait.
	ClassRateLimited Class = "rate_limited"
	// ClassTransient: network error, timeout or server error: retry with backoff.
	ClassTransient Class = "transient"
	// ClassBadResponse: an answer we cannot use: retry with backoff, and look at the provider.
	ClassBadResponse Class = "bad_response"
)

// Permanent reports whether retrying cannot help without a person's action.
func (c Class) Permanent() bool { return c == ClassInvalidGrant || c == ClassInvalidClient }

// Error is a classified provider failure. Code is the provider's error code, reduced to safe characters.
type Error struct {
	Class      Class
	Code       string
	RetryAfter time.Duration // from a Retry-After header, when sent
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("provider %s (%s)", e.Class, e.Code)
	}
	return "provider " + string(e.Class)
}

// Client is one configured provider.
type Client struct {
	Name         string
	Kind         string // "zoho" or "oauth2"
	TokenURL     string
	RevokeURL    string
	ClientID     string
	ClientSecret string
	RedirectURI  string
	// BasicAuth sends client credentials in an Authorization header instead of the form body.
	BasicAuth bool
	HTTP      *http.Client
	// RefreshLimit access tokens may be minted per RefreshWindow per refresh token (Zoho: 10 per 10 min).
	RefreshLimit  int
	RefreshWindow time.Duration
}

// Refresh exchanges a refresh token for a new access token.
func (c *Client) Refresh(ctx context.Context, refreshToken, clientID, clientSecret string) (*Tokens, error) {
	return c.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, clientID, clientSecret)
}

// Exchange trades an authorization code for tokens.
func (c *Client) Exchange(ctx context.Context, code, redirectURI, clientID, clientSecret string) (*Tokens, error) {
	if redirectURI == "" {
		redirectURI = c.RedirectURI
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}}
	if redirectURI != "" {
		form.Set("redirect_uri", redirectURI)
	}
	return c.token(ctx, form, clientID, clientSecret)
}

// Revoke revokes token (a refresh token) at the provider. A provider without a revoke URL fails with
// ClassBadResponse, since the token would stay valid there.
func (c *Client) Revoke(ctx context.Context, token, clientID, clientSecret string) error {
	if c.RevokeURL == "" {
		return &Error{Class: ClassBadResponse, Code: "no_revoke_url"}
	}
	form := url.Values{"token": {token}}
	if c.Kind == "oauth2" {
		form.Set("token_type_hint", "refresh_token")
	}
	_, err := c.post(ctx, c.RevokeURL, form, clientID, clientSecret, true)
	return err
}

func (c *Client) token(ctx context.Context, form url.Values, clientID, clientSecret string) (*Tokens, error) {
	body, err := c.post(ctx, c.TokenURL, form, clientID, clientSecret, false)
	if err != nil {
		return nil, err
	}
	var r struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		TokenType    string          `json:"token_type"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		APIDomain    string          `json:"api_domain"`
		Scope        string          `json:"scope"`
	}
	if !utf8.Valid(body) {
		// encoding/json would quietly replace the bad bytes, and we would store a token nobody issued.
		return nil, &Error{Class: ClassBadResponse, Code: "not_utf8"}
	}
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" {
		return nil, &Error{Class: ClassBadResponse, Code: "no_access_token"}
	}
	secs, err := strconv.ParseFloat(strings.Trim(string(r.ExpiresIn), `"`), 64)
	if err != nil || !(secs > 0) { // !(secs > 0) also refuses NaN
		return nil, &Error{Class: ClassBadResponse, Code: "no_expires_in"}
	}
	expiresIn := MaxExpiresIn
	if secs < MaxExpiresIn.Seconds() {
		expiresIn = time.Duration(secs * float64(time.Second))
	}
	t := &Tokens{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, TokenType: r.TokenType,
		APIDomain: r.APIDomain, ExpiresIn: expiresIn, Scopes: strings.Fields(strings.ReplaceAll(r.Scope, ",", " "))}
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	}
	if code := unusable(t); code != "" {
		return nil, &Error{Class: ClassBadResponse, Code: code}
	}
	return t, nil
}

// unusable names the first issued value the service could not store or hand out (invalid UTF-8, NUL, too
// long, not a URL), or returns "". Such a value would fail later, in the database or in an answer.
func unusable(t *Tokens) string {
	checks := []struct {
		code string
		err  error
	}{
		{"bad_access_token", validate.Text("access_token", t.AccessToken, MaxTokenBytes, true)},
		{"bad_refresh_token", validate.Text("refresh_token", t.RefreshToken, MaxTokenBytes, false)},
		{"bad_token_type", validate.Label("token_type", t.TokenType, 32, true)},
		{"bad_api_domain", validate.First(validate.Text("api_domain", t.APIDomain, 2048, false), validate.HTTPURL("api_domain", t.APIDomain))},
	}
	if len(t.Scopes) > MaxScopes {
		return "bad_scope"
	}
	for _, sc := range t.Scopes {
		checks = append(checks, struct {
			code string
			err  error
		}{"bad_scope", validate.Text("scope", sc, MaxScopeBytes, true)})
	}
	for _, c := range checks {
		if c.err != nil {
			return c.code
		}
	}
	return ""
}

// post sends a form and returns the body of a successful answer, or a classified error. Zoho answers
// some failures with HTTP 200 and an "error" field, so the body is checked whatever the status.
func (c *Client) post(ctx context.Context, endpoint string, form url.Values, clientID, clientSecret string, revoke bool) ([]byte, error) {
	if clientID == "" {
		clientID, clientSecret = c.ClientID, c.ClientSecret
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return nil, &Error{Class: ClassBadResponse, Code: "bad_endpoint"}
	}
	if c.BasicAuth {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	} else if clientID != "" {
		form.Set("client_id", clientID)
		form.Set("client_secret", clientSecret)
	}
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.ContentLength = int64(len(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, &Error{Class: ClassTransient, Code: "unreachable"}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &Error{Class: ClassTransient, Code: "read_failed"}
	}
	if e := classify(resp, body); e != nil {
		return nil, e
	}
	return body, nil
}

var safeCode = regexp.MustCompile(`[^A-Za-z0-9_ .-]`)

func classify(resp *http.Response, body []byte) *Error {
	var r struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &r)
	code := strings.ToLower(strings.TrimSpace(safeCode.ReplaceAllString(r.Error, "")))
	if len(code) > 64 {
		code = code[:64]
	}
	retry := retryAfter(resp.Header.Get("Retry-After"), time.Now())
	statusCode := "http_" + strconv.Itoa(resp.StatusCode)
	desc := strings.ToLower(r.Description)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, code == "slow_down",
		code == "access denied" && strings.Contains(desc, "too many requests"),
		code == "access_denied" && strings.Contains(desc, "too many requests"):
		return &Error{Class: ClassRateLimited, Code: cmp.Or(code, statusCode), RetryAfter: retry}
	case code == "invalid_grant", code == "invalid_code", code == "invalid_token" && resp.StatusCode < 500:
		return &Error{Class: ClassInvalidGrant, Code: code}
	case code == "invalid_client", code == "invalid_client_secret", code == "unauthorized_client", code == "invalid_redirect_uri":
		return &Error{Class: ClassInvalidClient, Code: code}
	case code == "temporarily_unavailable", resp.StatusCode >= 500:
		return &Error{Class: ClassTransient, Code: cmp.Or(code, statusCode), RetryAfter: retry}
	case code != "":
		return &Error{Class: ClassBadResponse, Code: code}
	case resp.StatusCode >= 400:
		return &Error{Class: ClassBadResponse, Code: statusCode}
	}
	return nil
}

// retryAfter reads a Retry-After header (retryafter.Parse), capped at MaxRetryAfter.
func retryAfter(v string, now time.Time) time.Duration {
	return retryafter.Parse(v, now, MaxRetryAfter)
}

// ClassOf returns the class of a provider error (ClassTransient for anything else, such as a timeout).
func ClassOf(err error) (Class, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Class, e.RetryAfter
	}
	return ClassTransient, 0
}
