package zohocrm_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/zohocrm"
	"github.com/sergas/core/services/webhook/zohocrm/zohotest"
)

const accessToken = "1000.4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f.8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b"

// clock is a settable, race-free clock shared by the test and the stand-in.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// standIn is a stand-in on a fixed clock (the real time, in whole seconds) that accepts accessToken.
func standIn(t *testing.T) (*zohotest.Server, *clock, zohocrm.Auth) {
	t.Helper()
	z := zohotest.New(t)
	clk := &clock{t: time.Now().Truncate(time.Second)}
	z.Now = clk.Now
	z.AllowToken(accessToken)
	return z, clk, zohocrm.Auth{APIDomain: z.URL, AccessToken: accessToken, TokenType: "Bearer"}
}

func watch(id string, expiry time.Time) zohocrm.Watch {
	return zohocrm.Watch{
		ChannelID: id,
		Events:    []string{"Deals.all", "Contacts.create"},
		Expiry:    expiry,
		Token:     "channel-token-0123456789",
		NotifyURL: "https://hooks.example.com/webhooks/zoho?tenant=a",
	}
}

func apiErr(t *testing.T, err error) *zohocrm.APIError {
	t.Helper()
	var e *zohocrm.APIError
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	return e
}

// Enable, renew and disable against the stand-in: the expiry returned is what Zoho confirmed and the
// stand-in holds the channel exactly as sent.
func TestEnableUpdateDisable(t *testing.T) {
	z, clk, auth := standIn(t)
	c := &zohocrm.Client{HTTP: &http.Client{Timeout: 5 * time.Second}}
	ctx := context.Background()

	want := clk.Now().Add(6 * 24 * time.Hour)
	w := watch("1000000068001", want.Add(400*time.Millisecond)) // sub-second part is not sent
	w.ReturnAffectedFieldValues = true
	got, err := c.Enable(ctx, auth, w)
	if err != nil {
		t.Fatalf("Enable: %v", err)
	}
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("Enable expiry = %v, want %v in UTC", got, want)
	}
	held, ok := z.Channel(w.ChannelID)
	if !ok || held.Token != w.Token || held.NotifyURL != w.NotifyURL || !held.ReturnAffectedFieldValues ||
		strings.Join(held.Events, ",") != "Deals.all,Contacts.create" || !held.Expiry.Equal(want) {
		t.Fatalf("stand-in holds %+v (found %v)", held, ok)
	}

	// Renewal a day later moves the expiry and replaces the details.
	clk.Advance(24 * time.Hour)
	w.Expiry = clk.Now().Add(7 * 24 * time.Hour)
	w.Events = []string{"Deals.edit"}
	w.ReturnAffectedFieldValues = false
	got, err = c.Update(ctx, auth, w)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !got.Equal(w.Expiry) {
		t.Fatalf("Update expiry = %v, want %v", got, w.Expiry)
	}
	if held, _ := z.Channel(w.ChannelID); strings.Join(held.Events, ",") != "Deals.edit" || held.ReturnAffectedFieldValues {
		t.Fatalf("update did not replace the details: %+v", held)
	}

	if err := c.Disable(ctx, auth, w.ChannelID); err != nil {
		t.Fatalf("Disable: %v", err)
	}
	if _, ok := z.Channel(w.ChannelID); ok {
		t.Fatal("channel still held after Disable")
	}
	if r := z.Requests(); r[http.MethodPost] != 1 || r[http.MethodPut] != 1 || r[http.MethodDelete] != 1 {
		t.Fatalf("requests = %v", r)
	}
}

// Zoho does not refuse an expiry beyond its maximum: it sets its default of one hour. The client
// returns what Zoho confirmed, so renewal is scheduled from the real expiry.
func TestEnableBeyondMaximumReturnsZohosExpiry(t *testing.T) {
	for _, tc := range []struct {
		version string
		ask     time.Duration
	}{{"v6", 8 * 24 * time.Hour}, {"v2.1", 2 * 24 * time.Hour}} {
		t.Run(tc.version, func(t *testing.T) {
			_, clk, auth := standIn(t)
			c := &zohocrm.Client{Version: tc.version}
			got, err := c.Enable(context.Background(), auth, watch("42", clk.Now().Add(tc.ask)))
			if err != nil {
				t.Fatalf("Enable: %v", err)
			}
			if want := clk.Now().Add(time.Hour); !got.Equal(want) {
				t.Fatalf("expiry = %v, want Zoho's default %v", got, want)
			}
		})
	}
}

// A channel that expired, or that Zoho never had, cannot be updated or disabled: ErrChannelNotFound,
// with Zoho's refusal beside it.
func TestExpiredAndUnknownChannels(t *testing.T) {
	z, clk, auth := standIn(t)
	c := &zohocrm.Client{}
	ctx := context.Background()
	w := watch("7", clk.Now().Add(time.Hour))
	if _, err := c.Enable(ctx, auth, w); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	clk.Advance(time.Hour) // expiry is exclusive: at the expiry instant the channel is gone
	if z.Live("7") {
		t.Fatal("channel still live at its expiry")
	}
	w.Expiry = clk.Now().Add(time.Hour)
	_, err := c.Update(ctx, auth, w)
	if !errors.Is(err, zohocrm.ErrChannelNotFound) {
		t.Fatalf("Update of an expired channel: %v, want ErrChannelNotFound", err)
	}
	if e := apiErr(t, err); e.Status != http.StatusBadRequest || e.Code != "INVALID_DATA" || e.Temporary() {
		t.Fatalf("Update of an expired channel: %+v", e)
	}

	for name, call := range map[string]func() error{
		"update unknown":  func() error { _, err := c.Update(ctx, auth, watch("8", clk.Now().Add(time.Hour))); return err },
		"disable unknown": func() error { return c.Disable(ctx, auth, "8") },
		"disable expired": func() error { return c.Disable(ctx, auth, "7") },
	} {
		if err := call(); !errors.Is(err, zohocrm.ErrChannelNotFound) {
			t.Errorf("%s: %v, want ErrChannelNotFound", name, err)
		}
	}
	// Enabling again is how an expired channel comes back.
	if _, err := c.Enable(ctx, auth, w); err != nil || !z.Live("7") {
		t.Fatalf("re-enable: %v", err)
	}
}

// A wrong or revoked access token is Zoho's 401 INVALID_TOKEN, not worth retrying, and the error never
// holds the token.
func TestWrongAccessToken(t *testing.T) {
	z, clk, auth := standIn(t)
	c := &zohocrm.Client{}
	auth.AccessToken = "1000.wrongwrongwrong.wrongwrong"
	_, err := c.Enable(context.Background(), auth, watch("1", clk.Now().Add(time.Hour)))
	e := apiErr(t, err)
	if e.Status != http.StatusUnauthorized || e.Code != "INVALID_TOKEN" || e.Temporary() {
		t.Fatalf("wrong token: %+v", e)
	}
	if strings.Contains(err.Error(), auth.AccessToken) {
		t.Fatalf("error holds the access token: %v", err)
	}
	z.RevokeToken(accessToken)
	auth.AccessToken = accessToken
	if err := c.Disable(context.Background(), auth, "1"); apiErr(t, err).Status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %v", err)
	}
}

// 429 and 5xx are temporary, with Retry-After; the next call goes through.
func TestTemporaryRefusals(t *testing.T) {
	z, clk, auth := standIn(t)
	c := &zohocrm.Client{}
	w := watch("99", clk.Now().Add(time.Hour))
	z.FailNext(1, http.StatusTooManyRequests)
	_, err := c.Enable(context.Background(), auth, w)
	if e := apiErr(t, err); e.Status != 429 || e.Code != "TOO_MANY_REQUESTS" || !e.Temporary() || e.RetryAfter != time.Second {
		t.Fatalf("429: %+v", e)
	}
	z.FailNext(2, http.StatusInternalServerError)
	for range 2 {
		_, err = c.Enable(context.Background(), auth, w)
		if e := apiErr(t, err); e.Status != 500 || !e.Temporary() {
			t.Fatalf("500: %+v", e)
		}
	}
	if _, err := c.Enable(context.Background(), auth, w); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
	if r := z.Requests(); r[http.MethodPost] != 4 {
		t.Fatalf("requests = %v, want 4 POST", r)
	}
}

// Input that cannot be right is refused before anything is sent (errs.KindInvalid).
func TestInvalidInputIsNotSent(t *testing.T) {
	z, clk, auth := standIn(t)
	c := &zohocrm.Client{}
	ok := watch("5", clk.Now().Add(time.Hour))
	mod := func(f func(*zohocrm.Watch)) zohocrm.Watch {
		w := ok
		w.Events = append([]string(nil), ok.Events...)
		f(&w)
		return w
	}
	withDomain := func(d string) zohocrm.Auth { a := auth; a.APIDomain = d; return a }
	cases := map[string]struct {
		a zohocrm.Auth
		w zohocrm.Watch
	}{
		"channel id letters":   {auth, mod(func(w *zohocrm.Watch) { w.ChannelID = "12a" })},
		"channel id zero":      {auth, mod(func(w *zohocrm.Watch) { w.ChannelID = "000" })},
		"channel id too long":  {auth, mod(func(w *zohocrm.Watch) { w.ChannelID = strings.Repeat("9", 19) })},
		"token 51 chars":       {auth, mod(func(w *zohocrm.Watch) { w.Token = strings.Repeat("t", 51) })},
		"token control":        {auth, mod(func(w *zohocrm.Watch) { w.Token = "a\nb" })},
		"no events":            {auth, mod(func(w *zohocrm.Watch) { w.Events = nil })},
		"bad event":            {auth, mod(func(w *zohocrm.Watch) { w.Events = []string{"Deals.update"} })},
		"event no module":      {auth, mod(func(w *zohocrm.Watch) { w.Events = []string{".all"} })},
		"no notify url":        {auth, mod(func(w *zohocrm.Watch) { w.NotifyURL = "" })},
		"relative notify url":  {auth, mod(func(w *zohocrm.Watch) { w.NotifyURL = "/webhooks/zoho" })},
		"notify url userinfo":  {auth, mod(func(w *zohocrm.Watch) { w.NotifyURL = "https://u:p@example.com/" })},
		"zero expiry":          {auth, mod(func(w *zohocrm.Watch) { w.Expiry = time.Time{} })},
		"domain with path":     {withDomain(z.URL + "/evil"), ok},
		"domain dot path":      {withDomain(z.URL + "/../x"), ok},
		"domain with query":    {withDomain(z.URL + "?x=1"), ok},
		"domain with fragment": {withDomain(z.URL + "#x"), ok},
		"domain userinfo":      {withDomain("https://user@www.zohoapis.com"), ok},
		"domain http remote":   {withDomain("http://www.zohoapis.com"), ok},
		"domain ftp":           {withDomain("ftp://www.zohoapis.com"), ok},
		"domain empty":         {withDomain(""), ok},
		"domain no scheme":     {withDomain("www.zohoapis.com"), ok},
		"access token newline": {zohocrm.Auth{APIDomain: z.URL, AccessToken: "abc\r\nX-Evil: 1"}, ok},
		"access token empty":   {zohocrm.Auth{APIDomain: z.URL}, ok},
	}
	for name, tc := range cases {
		_, err := c.Enable(context.Background(), tc.a, tc.w)
		if !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("%s: %v, want errs.ErrInvalid", name, err)
		}
		if err != nil && strings.Contains(err.Error(), accessToken) {
			t.Errorf("%s: error holds the access token", name)
		}
	}
	if err := c.Disable(context.Background(), auth, "1,2"); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("disable of a list: %v", err)
	}
	if _, err := (&zohocrm.Client{Version: "v6/../../x"}).Enable(context.Background(), auth, ok); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("bad version: %v", err)
	}
	if r := z.Requests(); len(r) != 0 {
		t.Fatalf("refused input reached Zoho: %v", r)
	}
}
