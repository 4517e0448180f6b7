package zohocrm_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sergas/core/services/webhook/zohocrm"
)

// fake is a server that answers every call with handler; it stands for a Zoho that misbehaves.
func fake(t *testing.T, handler http.HandlerFunc) zohocrm.Auth {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return zohocrm.Auth{APIDomain: srv.URL, AccessToken: accessToken}
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

var soon = time.Now().Add(time.Hour)

// An item that failed is an error even when the HTTP status is 200; so is an answer that is not about
// the channel asked for, or that has no item.
func TestItemErrorsOnHTTP200(t *testing.T) {
	c := &zohocrm.Client{}
	cases := map[string]struct {
		body, code string
		notFound   bool
	}{
		"item error": {`{"watch":[{"code":"INVALID_DATA","details":{"api_name":"token"},"message":"invalid data","status":"error"}]}`,
			"INVALID_DATA", false},
		"item not found": {`{"watch":[{"code":"RESOURCE_NOT_FOUND","details":{},"message":"no such channel","status":"error"}]}`,
			"RESOURCE_NOT_FOUND", true},
		"other channel": {`{"watch":[{"code":"SUCCESS","details":{"events":[{"channel_id":"2","channel_expiry":"2030-01-01T00:00:00+00:00"}]},"status":"success"}]}`,
			"INVALID_RESPONSE", false},
		"no item":                  {`{"watch":[]}`, "INVALID_RESPONSE", false},
		"two items":                {`{"watch":[{"code":"SUCCESS","status":"success"},{"code":"SUCCESS","status":"success"}]}`, "INVALID_RESPONSE", false},
		"whole request":            {`{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"invalid oauth scope","status":"error"}`, "OAUTH_SCOPE_MISMATCH", false},
		"success but status error": {`{"watch":[{"code":"SUCCESS","status":"error"}]}`, "SUCCESS", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.Enable(context.Background(), fake(t, answer(200, tc.body)), watch("1", soon))
			e := apiErr(t, err)
			if e.Status != 200 || e.Code != tc.code || e.Temporary() {
				t.Fatalf("%+v", e)
			}
			if errors.Is(err, zohocrm.ErrChannelNotFound) != tc.notFound {
				t.Fatalf("ErrChannelNotFound = %v, want %v", !tc.notFound, tc.notFound)
			}
		})
	}
}

// Disable's answer has an item per module; any failed item fails the call.
func TestDisableItems(t *testing.T) {
	c := &zohocrm.Client{}
	ok := `{"code":"SUCCESS","details":{"channel_id":"1"},"message":"Successfully un-subscribed from actions-watch","status":"success"}`
	if err := c.Disable(context.Background(), fake(t, answer(200, `{"watch":[`+ok+`,`+ok+`]}`)), "1"); err != nil {
		t.Fatalf("two modules: %v", err)
	}
	bad := `{"code":"INTERNAL_ERROR","details":{},"message":"x","status":"error"}`
	if err := c.Disable(context.Background(), fake(t, answer(200, `{"watch":[`+ok+`,`+bad+`]}`)), "1"); apiErr(t, err).Code != "INTERNAL_ERROR" {
		t.Fatalf("one failed module: %v", err)
	}
	if err := c.Disable(context.Background(), fake(t, answer(200, `{"watch":[{"code":"SUCCESS","details":{"channel_id":"2"},"status":"success"}]}`)), "1"); apiErr(t, err).Code != "INVALID_RESPONSE" {
		t.Fatalf("other channel: %v", err)
	}
}

// Garbage and huge answers are refused without being copied into the error, and no more than the bound
// is read of a huge one.
func TestGarbageAndHugeAnswers(t *testing.T) {
	c := &zohocrm.Client{}
	html := "<html><body>proxy error " + strings.Repeat("x", 1000) + "</body></html>"
	if _, err := c.Enable(context.Background(), fake(t, answer(200, html)), watch("1", soon)); apiErr(t, err).Code != "INVALID_RESPONSE" || strings.Contains(err.Error(), "<html>") {
		t.Fatalf("garbage 200: %v", err)
	}
	_, err := c.Enable(context.Background(), fake(t, answer(502, html)), watch("1", soon))
	if e := apiErr(t, err); e.Status != 502 || !e.Temporary() || e.Message != "Bad Gateway" {
		t.Fatalf("garbage 502: %+v", e)
	}

	var written atomic.Int64
	huge := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_, _ = io.WriteString(w, `{"watch":[{"code":"SUCCESS","message":"`)
		chunk := []byte(strings.Repeat("a", 32<<10))
		for range 1024 { // 32 MiB at most; the client stops reading long before
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
	_, err = c.Enable(context.Background(), fake(t, huge), watch("1", soon))
	if e := apiErr(t, err); e.Code != "INVALID_RESPONSE" || len(e.Error()) > 500 {
		t.Fatalf("huge: %v", err)
	}
	// The server may have buffered some more in the socket, never the whole 32 MiB.
	if n := written.Load(); n >= 32<<20 {
		t.Fatalf("client read the whole huge answer (%d bytes written)", n)
	}
}

// A server that does not answer is bounded by the caller's ctx.
func TestSlowServerHonoursDeadline(t *testing.T) {
	release := make(chan struct{})
	slow := func(w http.ResponseWriter, r *http.Request) {
		// The body is read first: the server notices a client that went away only after that.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	a := fake(t, slow)
	t.Cleanup(func() { close(release) }) // runs before the server's Close (cleanups run last-first)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := (&zohocrm.Client{}).Update(ctx, a, watch("1", soon))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned after %v", d)
	}
	// The HTTP client's own timeout is a temporary network error, not a ctx error.
	_, err = (&zohocrm.Client{HTTP: &http.Client{Timeout: 200 * time.Millisecond}}).Enable(context.Background(), a, watch("1", soon))
	if e := apiErr(t, err); e.Status != 0 || !e.Temporary() || strings.Contains(e.Error(), a.APIDomain) {
		t.Fatalf("client timeout: %+v", e)
	}
}

// Whatever the server echoes, the error never holds the access token or the channel token, nor the
// Authorization header.
func TestErrorsNeverHoldSecrets(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		msg := strings.ReplaceAll(r.Header.Get("Authorization")+" "+string(body), `"`, `'`)
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"code":"INVALID_DATA","details":{},"message":"`+msg+`","status":"error"}`)
	}
	w := watch("1", soon)
	_, err := (&zohocrm.Client{}).Enable(context.Background(), fake(t, echo), w)
	if err == nil {
		t.Fatal("no error")
	}
	for _, secret := range []string{accessToken, accessToken[:20], w.Token, "Zoho-oauthtoken 1000"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error holds %q: %v", secret, err)
		}
	}
	// The message is bounded, so the access token is cut; no start of it may remain either.
	longEcho := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"code":"INVALID_DATA","message":"`+strings.Repeat("m", 280)+r.Header.Get("Authorization")[len("Zoho-oauthtoken "):]+`","status":"error"}`)
	}
	_, err = (&zohocrm.Client{}).Enable(context.Background(), fake(t, longEcho), w)
	if strings.Contains(err.Error(), accessToken[:8]) {
		t.Fatalf("error holds the start of the access token: %v", err)
	}
}

// A redirect is not followed (it could carry the channel token elsewhere): the 3xx is the answer.
func TestRedirectIsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	redirect := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/crm/v6/actions/watch", http.StatusTemporaryRedirect)
	}
	_, err := (&zohocrm.Client{HTTP: &http.Client{}}).Enable(context.Background(), fake(t, redirect), watch("1", soon))
	if e := apiErr(t, err); e.Status != http.StatusTemporaryRedirect || e.Temporary() {
		t.Fatalf("redirect: %+v", e)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("redirect followed %d times", n)
	}
}

// An answer without channel_expiry (or with one that cannot be read) gives back the requested expiry,
// in UTC and whole seconds; several modules' expiries give the earliest.
func TestExpiryFromAnswer(t *testing.T) {
	c := &zohocrm.Client{}
	req := time.Now().Add(2*time.Hour + 300*time.Millisecond)
	for body, want := range map[string]time.Time{
		`{"watch":[{"code":"SUCCESS","details":{},"status":"success"}]}`:                                                                                                                                           req.Truncate(time.Second).UTC(),
		`{"watch":[{"code":"SUCCESS","details":{"events":[{"channel_id":1,"channel_expiry":"soon"}]},"status":"success"}]}`:                                                                                        req.Truncate(time.Second).UTC(),
		`{"watch":[{"code":"SUCCESS","details":{"events":[{"channel_id":"1","channel_expiry":"2030-01-02T10:00:00+05:30"},{"channel_id":"1","channel_expiry":"2030-01-02T09:00:00+05:30"}]},"status":"success"}]}`: time.Date(2030, 1, 2, 3, 30, 0, 0, time.UTC),
	} {
		got, err := c.Update(context.Background(), fake(t, answer(200, body)), watch("1", req))
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s: %v %v, want %v", body, got, err, want)
		}
	}
}

// Nobody listening: a temporary network error (Status 0) that says nothing of the request.
func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	a := zohocrm.Auth{APIDomain: srv.URL, AccessToken: accessToken}
	srv.Close()
	err := (&zohocrm.Client{}).Disable(context.Background(), a, "123")
	e := apiErr(t, err)
	if e.Status != 0 || !e.Temporary() || strings.Contains(err.Error(), "123") || strings.Contains(err.Error(), accessToken) {
		t.Fatalf("network: %v", err)
	}
}
