// Package validate checks request fields and phrases the InvalidArgument messages callers see.
package validate

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/errs"
)

var name = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Name checks a lower-case identifier such as a provider or source name.
func Name(field, v string) error {
	if !name.MatchString(v) {
		return errs.Invalid("%s must be 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit", field)
	}
	return nil
}

// ID checks a caller-chosen identifier: 1 to max printable ASCII characters without '/'.
func ID(field, v string, max int) error {
	if v == "" || len(v) > max {
		return errs.Invalid("%s must be 1-%d characters", field, max)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x21 || c > 0x7e || c == '/' {
			return errs.Invalid("%s must be printable ASCII without spaces or '/'", field)
		}
	}
	return nil
}

// Text checks free text: valid UTF-8 without NUL (which PostgreSQL cannot store, so both backends refuse
// it alike), at most max bytes, and present when required.
func Text(field, v string, max int, required bool) error {
	switch {
	case required && v == "":
		return errs.Invalid("%s is required", field)
	case len(v) > max:
		return errs.Invalid("%s must be at most %d bytes", field, max)
	case !utf8.ValidString(v):
		return errs.Invalid("%s must be valid UTF-8", field)
	case strings.IndexByte(v, 0) >= 0:
		return errs.Invalid("%s must not contain NUL", field)
	}
	return nil
}

// Label checks a one-line name shown to people (an actor, an action): Text without the characters
// LabelUnsafe names, which could forge line breaks, escape sequences or reordered text in logs and
// terminals.
func Label(field, v string, max int, required bool) error {
	if err := Text(field, v, max, required); err != nil {
		return err
	}
	for _, r := range v {
		if LabelUnsafe(r) {
			return errs.Invalid("%s must not contain control, line-separator or bidirectional-formatting characters", field)
		}
	}
	return nil
}

// LabelUnsafe reports whether r may not stand in a Label: control characters (C0, DEL, C1); the line
// and paragraph separators U+2028 and U+2029, which some terminals and log viewers break lines at; and
// the bidirectional formatting characters (U+200E/200F, U+061C, U+202A-202E, U+2066-2069), which make
// a viewer show text in another order than it is stored ("Trojan Source").
func LabelUnsafe(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028', r == '\u2029', r == '\u200e', r == '\u200f', r == '\u061c':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// UUID checks an identifier in UUID form and returns it in the canonical lower-case form that both
// backends store, so that "ABC…" finds the same row on SQLite as on PostgreSQL.
func UUID(field, v string) (string, error) {
	u, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return "", errs.Invalid("%s must be a UUID such as 0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d", field)
	}
	return u.String(), nil
}

// HTTPURL checks an absolute http or https URL, when given.
func HTTPURL(field, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(v) > 2048 {
		return errs.Invalid("%s must be an absolute http(s) URL", field)
	}
	return nil
}

// First returns the first non-nil error.
func First(errors ...error) error {
	for _, err := range errors {
		if err != nil {
			return err
		}
	}
	return nil
}
