package zohocrm

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "0": 0, "-5": 0, "abc": 0, "999999999999": time.Hour,
		"Thu, 26 Nov 2026 12:00:30 GMT": 30 * time.Second, "Thu, 26 Nov 2026 11:00:00 GMT": 0,
		"Fri, 27 Nov 2026 12:00:00 GMT": time.Hour,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestCleanText(t *testing.T) {
	if got := cleanText("a\nb\x00c\u2028d\xff", 100); got != "a b c\u2028d" && got != "a b c d" {
		t.Errorf("control characters kept: %q", got)
	}
	if got := cleanText(strings.Repeat("é", 400), 300); len(got) > 300+len("…") || !utf8.ValidString(got) {
		t.Errorf("not bounded: %d bytes", len(got))
	}
}

// FuzzInterpret: whatever an answer holds, interpreting it never panics, an error's text stays bounded
// and printable, and a success always comes with items or none (never both an error and items).
func FuzzInterpret(f *testing.F) {
	for _, seed := range []string{
		`{"watch":[{"code":"SUCCESS","details":{"events":[{"channel_expiry":"2026-11-27T12:00:00+05:30","channel_id":"1"}]},"message":"ok","status":"success"}]}`,
		`{"watch":[{"code":"INVALID_DATA","details":{"api_name":"channel_id","json_path":"$.watch[0].channel_id"},"message":"invalid data","status":"error"}]}`,
		`{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}`,
		`{"watch":[{"details":"x"}]}`, `{"watch":{}}`, `<html>`, ``, `null`, `[]`, `{"watch":[null]}`,
	} {
		for _, status := range []int{200, 204, 207, 400, 401, 429, 500} {
			f.Add(status, []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		if status < 100 || status > 999 {
			return
		}
		_, items, err := interpret("enable", status, 0, raw)
		if err != nil {
			if items != nil {
				t.Fatal("error with items")
			}
			msg := err.Error()
			if len(msg) > 600 || !utf8.ValidString(msg) || strings.ContainsAny(msg, "\n\r\x00") {
				t.Fatalf("error text not bounded or not clean: %q", msg)
			}
			var e *APIError
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *APIError", err)
			}
			return
		}
		if status < 200 || status > 299 {
			t.Fatalf("status %d accepted", status)
		}
	})
}

// Without an expiry in Zoho's answer, the requested one is assumed only within Zoho's maximum for the
// version; beyond it Zoho applies one hour, and so does the assumption.
func TestUnconfirmedExpiry(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		version   string
		requested time.Duration
		want      time.Duration
	}{
		{"", 7 * 24 * time.Hour, 7 * 24 * time.Hour},
		{"v6", 7*24*time.Hour + time.Second, time.Hour},
		{"v2.1", 24 * time.Hour, 24 * time.Hour},
		{"v3", 25 * time.Hour, time.Hour},
		{"v8", 2 * time.Hour, 2 * time.Hour},
	} {
		c := &Client{Version: tc.version}
		if got := c.unconfirmedExpiry(now.Add(tc.requested), now); !got.Equal(now.Add(tc.want)) {
			t.Errorf("%q %v: %v, want now+%v", tc.version, tc.requested, got.Sub(now), tc.want)
		}
	}
}
