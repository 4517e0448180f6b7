package webhook

import (
	"cmp"
	"net/http"
	"net/textproto"
	"slices"
	"unicode/utf8"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// AlwaysDeniedHeaders are HTTP's own credential headers: never stored, whatever
// WEBHOOK_HEADER_DENYLIST says, so that a shortened list cannot let them in.
var AlwaysDeniedHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// DefaultHeaderDenylist is WEBHOOK_HEADER_DENYLIST's default: headers that commonly carry a credential of
// the sender or of a proxy in front of us. Signature headers (X-Zoho-Signature, Webhook-Signature) are
// kept: they are computed from the body and reveal no secret, and they show what a delivery was verified
// with.
var DefaultHeaderDenylist = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie",
	"X-Api-Key", "Api-Key", "X-Auth-Token", "X-Access-Token", "X-Amz-Security-Token",
	"X-Csrf-Token", "X-Xsrf-Token", "X-Gitlab-Token", "X-Authorization", "Private-Token", "X-Api-Token",
}

const (
	maxHeaderName  = 256
	maxHeaderValue = 64 << 10 // the gateway accepts no more than 64 KiB of headers in all
)

// headerDenylist returns names in canonical form with AlwaysDeniedHeaders added, sorted for binary
// search; ok is false when a name is not a valid header name (such a name is left out: it could never
// match a stored header anyway).
func headerDenylist(names []string) (deny []string, ok bool) {
	ok = true
	for _, n := range append(slices.Clone(AlwaysDeniedHeaders), names...) {
		if !validHeaderName(n) {
			ok = false
			continue
		}
		deny = append(deny, textproto.CanonicalMIMEHeaderKey(n))
	}
	slices.Sort(deny)
	return slices.Compact(deny), ok
}

// parseHeaders checks a delivery's headers and returns all of them, names in canonical form. A name that
// is not an RFC 9110 token is refused rather than dropped: "Authorization " or "Authorization\x00" is not
// Authorization to a comparison, so storing it would carry the credential past the deny list, and
// dropping it would silently store less than was sent. No HTTP server passes such a name (the gateway's
// refuses it with 400), so only a direct gRPC caller can send one. Values must be text both backends can
// store: valid UTF-8 without control characters other than tab (NUL would fail only on PostgreSQL).
func parseHeaders(in []*webhookv1.Header) (http.Header, error) {
	h := make(http.Header, len(in))
	for _, hd := range in {
		name := hd.GetName()
		if len(name) > maxHeaderName || !validHeaderName(name) {
			return nil, errs.Invalid("header names must be 1-%d characters of an HTTP token (letters, digits and !#$%%&'*+-.^_`|~)", maxHeaderName)
		}
		for _, v := range hd.GetValues() {
			// A value within the size, UTF-8 and free of control characters (so of NUL too) passes both
			// checks below; only one that fails is given to them, for their messages, so that an accepted
			// header does not build validate.Text's field name ("header "+name) for nothing.
			if len(v) > maxHeaderValue || !validHeaderValue(v) || !utf8.ValidString(v) {
				if err := validate.Text("header "+name, v, maxHeaderValue, false); err != nil {
					return nil, err
				}
				return nil, errs.Invalid("header %s must not contain control characters", name)
			}
			h.Add(name, v)
		}
	}
	return h, nil
}

// storedHeaders returns the headers to store with an event, sorted by name, without those in deny.
func storedHeaders(h http.Header, deny []string) []store.Header {
	out := make([]store.Header, 0, len(h))
	for n, v := range h {
		if _, denied := slices.BinarySearch(deny, n); !denied {
			out = append(out, store.Header{Name: n, Values: v})
		}
	}
	slices.SortFunc(out, func(a, b store.Header) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// visibleHeaders are the stored headers a reader sees: those the deny list now in force allows. An event
// stored before a header was added to the list keeps it in the database but never shows it.
func visibleHeaders(hs []store.Header, deny []string) []store.Header {
	out := make([]store.Header, 0, len(hs))
	for _, h := range hs {
		if !validHeaderName(h.Name) {
			continue
		}
		if _, denied := slices.BinarySearch(deny, textproto.CanonicalMIMEHeaderKey(h.Name)); !denied {
			out = append(out, h)
		}
	}
	return out
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || !tchar[c] {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters other than horizontal tab (RFC 9110 section 5.5).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

var tchar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
