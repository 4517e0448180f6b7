// Package zohocrm is a small client for Zoho CRM's Notification API (actions/watch): it enables, renews
// and disables the notification channels through which Zoho CRM posts record changes to the webhook
// service. It speaks only the three calls the channel keeper needs and nothing else of the CRM API.
//
// Reference: https://www.zoho.com/crm/developer/docs/api/v7/notifications/enable.html (and
// update-details.html, disable.html beside it); v6 has the same shapes.
package zohocrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Watch is one notification channel as Zoho's Notification API takes it.
type Watch struct {
	ChannelID string    // digits
	Events    []string  // "Deals.all", "Contacts.create", ...
	Expiry    time.Time // channel_expiry
	Token     string    // <= 50 characters, echoed back by Zoho in each notification
	NotifyURL string
	// ReturnAffectedFieldValues asks Zoho to send the new values of the fields an update changed.
	ReturnAffectedFieldValues bool
}

// Auth is how to call Zoho for one connection: what the token service's GetAccessToken answers.
type Auth struct{ APIDomain, AccessToken, TokenType string }

// Client calls Zoho CRM's Notification API. The zero value is usable: it calls with
// http.DefaultClient and API version v6.
type Client struct {
	// HTTP sends the requests; nil means http.DefaultClient. Timeouts come from it and from the ctx of
	// each call.
	HTTP *http.Client
	// Version is the API version in the path ("v6", "v7", "v2.1"); "v6" when empty.
	Version string
}

// defaultVersion is the API version used when Client.Version is empty.
const defaultVersion = "v6"

// maxResponseBytes bounds what is read of any answer: Zoho's answers to these calls are a few hundred
// bytes, so anything much larger is not Zoho and is refused rather than buffered.
const maxResponseBytes = 64 << 10

// Enable subscribes w (POST {api_domain}/crm/{v}/actions/watch) and returns the channel expiry Zoho
// confirmed, or w.Expiry when its answer does not carry one. Zoho silently shortens an expiry beyond its
// maximum (one day before v4, one week from v4) to its default of one hour, so callers must schedule
// renewal from the returned expiry, never from the requested one.
func (c *Client) Enable(ctx context.Context, a Auth, w Watch) (time.Time, error) {
	return c.subscribe(ctx, http.MethodPost, "enable", a, w)
}

// Update replaces the channel's details (PUT): it renews the expiry and sets events, notify URL and
// token to w's. It fails with ErrChannelNotFound when Zoho no longer has the channel (unknown, expired
// or disabled); the caller then enables it again.
func (c *Client) Update(ctx context.Context, a Auth, w Watch) (time.Time, error) {
	return c.subscribe(ctx, http.MethodPut, "update", a, w)
}

// Disable stops the channel (DELETE ?channel_ids=). It fails with ErrChannelNotFound when Zoho does not
// have the channel, which a caller that only wants it gone may treat as done.
func (c *Client) Disable(ctx context.Context, a Auth, channelID string) error {
	const op = "disable"
	if err := checkChannelID(channelID); err != nil {
		return invalid(op, err.Error())
	}
	u, err := c.endpoint(a)
	if err != nil {
		return invalid(op, err.Error())
	}
	u.RawQuery = url.Values{"channel_ids": {channelID}}.Encode()
	status, items, err := c.do(ctx, op, http.MethodDelete, u, a, nil)
	if err != nil {
		return scrub(err, a.AccessToken)
	}
	if status == http.StatusNoContent {
		// Nothing to report: whatever Zoho had under this id is not subscribed now.
		return nil
	}
	// Zoho answers one item per module the channel watched; all must have succeeded.
	if len(items) == 0 {
		return invalidResponse(op, status, "no watch item in the answer")
	}
	for _, it := range items {
		if err := it.err(op, status); err != nil {
			return scrub(err, a.AccessToken)
		}
		if id := it.Details.ChannelID.String(); id != "" && id != channelID {
			return invalidResponse(op, status, "answer is for another channel")
		}
	}
	return nil
}

// subscribe is Enable and Update: same body, same answer.
func (c *Client) subscribe(ctx context.Context, method, op string, a Auth, w Watch) (time.Time, error) {
	if err := checkWatch(w); err != nil {
		return time.Time{}, invalid(op, err.Error())
	}
	u, err := c.endpoint(a)
	if err != nil {
		return time.Time{}, invalid(op, err.Error())
	}
	body, err := json.Marshal(watchRequest{Watch: []watchItem{{
		ChannelID: w.ChannelID,
		Events:    w.Events,
		// Zoho's examples give the offset explicitly ("2023-02-02T10:30:00+05:30") and answer in whole
		// seconds; integrators report that it refuses the "Z" of UTC (INVALID_DATA), hence "+00:00".
		ChannelExpiry:             w.Expiry.UTC().Format(expiryLayout),
		Token:                     w.Token,
		NotifyURL:                 w.NotifyURL,
		ReturnAffectedFieldValues: w.ReturnAffectedFieldValues,
	}}})
	if err != nil {
		return time.Time{}, invalid(op, "cannot encode the watch")
	}
	status, items, err := c.do(ctx, op, method, u, a, body)
	if err != nil {
		return time.Time{}, scrub(err, a.AccessToken, w.Token)
	}
	if len(items) != 1 {
		return time.Time{}, invalidResponse(op, status, fmt.Sprintf("%d watch items in the answer, want 1", len(items)))
	}
	it := items[0]
	if err := it.err(op, status); err != nil {
		return time.Time{}, scrub(err, a.AccessToken, w.Token)
	}
	// The answer lists one entry per module subscribed, each with the channel's expiry; the channel
	// lives as long as its earliest one.
	var expiry time.Time
	for _, ev := range it.Details.Events {
		if id := ev.ChannelID.String(); id != "" && id != w.ChannelID {
			return time.Time{}, invalidResponse(op, status, "answer is for another channel")
		}
		t, err := time.Parse(time.RFC3339, ev.ChannelExpiry)
		if err != nil {
			continue // not a time we can read: fall back to the requested one below
		}
		if expiry.IsZero() || t.Before(expiry) {
			expiry = t
		}
	}
	if expiry.IsZero() {
		expiry = c.unconfirmedExpiry(w.Expiry, time.Now())
	}
	return expiry.UTC(), nil
}

// unconfirmedExpiry is the expiry to assume when Zoho's answer does not state one: the requested one,
// unless it lies beyond the version's maximum, where Zoho documents that it applies its default of one
// hour instead. Assuming too early costs a renewal; assuming too late loses notifications.
func (c *Client) unconfirmedExpiry(requested, now time.Time) time.Time {
	requested = requested.Truncate(time.Second)
	if requested.Sub(now) > maxExpiry(c.Version) {
		return now.Add(zohoDefaultExpiry).Truncate(time.Second)
	}
	return requested
}

// Zoho's channel expiry limits (enable.html; Kaizen FAQ on the Notification APIs): at most one day ahead
// for v2 to v3, one week from v4; one hour when absent or beyond the maximum.
const (
	zohoDefaultExpiry = time.Hour
	maxExpiryBeforeV4 = 24 * time.Hour
	maxExpiryFromV4   = 7 * 24 * time.Hour
)

// maxExpiry is Zoho's limit on channel_expiry for an API version ("" is the default version).
func maxExpiry(version string) time.Duration {
	if version == "" {
		version = defaultVersion
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if n, err := strconv.Atoi(major); err == nil && n < 4 {
		return maxExpiryBeforeV4
	}
	return maxExpiryFromV4
}

// expiryLayout is RFC 3339 in whole seconds with a numeric offset.
const expiryLayout = "2006-01-02T15:04:05-07:00"

// endpoint is {api_domain}/crm/{version}/actions/watch.
func (c *Client) endpoint(a Auth) (*url.URL, error) {
	base, err := checkAPIDomain(a.APIDomain)
	if err != nil {
		return nil, err
	}
	v := c.Version
	if v == "" {
		v = defaultVersion
	}
	if !versionPattern.MatchString(v) {
		return nil, errors.New(`version must look like "v6" or "v2.1"`)
	}
	if err := checkAccessToken(a.AccessToken); err != nil {
		return nil, err
	}
	u := *base
	u.Path = "/crm/" + v + "/actions/watch"
	return &u, nil
}

// do sends one request and reads Zoho's answer: the watch items of a 2xx (or of a 4xx that carries
// them), or an *APIError for a refusal. Errors never hold the access token, the Authorization header or
// the request body (which holds the channel token).
func (c *Client) do(ctx context.Context, op, method string, u *url.URL, a Auth, body []byte) (int, []watchResult, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, invalid(op, "cannot build the request")
	}
	// Zoho CRM's API documents exactly "Authorization: Zoho-oauthtoken <access token>". Zoho Accounts
	// answers token_type "Bearer" for the same token, and other Zoho APIs take that prefix, but the CRM
	// documentation never promises it; Auth.TokenType is therefore not used for the prefix.
	req.Header.Set("Authorization", "Zoho-oauthtoken "+a.AccessToken)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Zoho's API does not redirect; following one could carry the channel token (in the body) to
	// another host, so the 3xx itself is the answer (a refusal). The copy shares the caller's transport
	// and its connection pool.
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, nil, fmt.Errorf("zohocrm: %s: %w", op, ctxErr)
		}
		return 0, nil, networkError(op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, nil, fmt.Errorf("zohocrm: %s: %w", op, ctxErr)
		}
		return 0, nil, networkError(op, err)
	}
	return interpret(op, resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), raw)
}

// interpret reads Zoho's answer to one call: the watch items of a 2xx (or of a 400 that carries them),
// or the error for a refusal. raw is at most maxResponseBytes+1 bytes, more meaning the answer was
// larger than any Zoho sends.
func interpret(op string, status int, retryAfter time.Duration, raw []byte) (int, []watchResult, error) {
	if len(raw) > maxResponseBytes {
		return status, nil, &APIError{Status: status, Code: codeInvalidResponse,
			Message: fmt.Sprintf("%s: answer larger than %d bytes", op, maxResponseBytes), RetryAfter: retryAfter}
	}
	ok := status >= 200 && status < 300
	if status == http.StatusNoContent {
		return status, nil, nil
	}
	var ans answer
	decErr := json.Unmarshal(raw, &ans)
	switch {
	case decErr == nil && len(ans.Watch) > 0 && (ok || status == http.StatusBadRequest):
		// Per-item answers: a 2xx (each item may still be an error) or a 400 whose items say which
		// channel failed and why (Zoho's INVALID_DATA for a channel it does not have).
		if !ok {
			for _, it := range ans.Watch {
				if err := it.err(op, status); err != nil {
					return status, nil, err
				}
			}
			return status, nil, invalidResponse(op, status, "400 without an error item")
		}
		return status, ans.Watch, nil
	case ok && decErr != nil:
		return status, nil, invalidResponse(op, status, "answer is not JSON")
	case ok && ans.Code != "" && !strings.EqualFold(ans.Status, "success"):
		// A whole-request error inside a 2xx: still an error.
		return status, nil, apiError(status, ans.Code, ans.Message, retryAfter, ans.Details)
	case ok:
		return status, nil, nil
	}
	// A refusal: Zoho's {"code","message","status":"error"} when the body is Zoho's, the HTTP status
	// text otherwise (a proxy's page is never copied into the error).
	if decErr == nil && ans.Code != "" {
		return status, nil, apiError(status, ans.Code, ans.Message, retryAfter, ans.Details)
	}
	msg := http.StatusText(status)
	if msg == "" {
		msg = "unexpected HTTP status"
	}
	return status, nil, &APIError{Status: status, Message: msg, RetryAfter: retryAfter}
}
