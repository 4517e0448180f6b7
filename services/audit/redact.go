package audit

import (
	"strings"
	"unicode"
)

const (
	// redactedKey is the reserved top-level metadata key that records that values were redacted. The flag
	// lives in the metadata text, which hash version 2 already covers, rather than in a new hashed field:
	// a field added to version 2 would change the encoding of events already hashed with it, and a new
	// version 3 would need a column and a migration for one bit. Callers may not set it, so it is only
	// ever the service's word.
	redactedKey = "sergas.redacted"
	// redactedMarker replaces every redacted value, whatever its type.
	redactedMarker = "[REDACTED]"
)

// DefaultRedactKeys are the metadata keys whose values are never stored (AUDIT_REDACT_KEYS replaces them).
var DefaultRedactKeys = []string{
	"password", "secret", "token", "api_key", "authorization", "cookie",
	"refresh_token", "access_token", "client_secret",
}

// redactor replaces the values of secret-looking metadata keys before an event is hashed or stored: the
// log is kept for good and cannot be edited, so a secret written to it could never be taken back.
type redactor struct{ suffixes []string }

// newRedactor matches keys that, once normalised (see normalizeKey), equal or end with a normalised key
// of keys: "X-Api-Key" and "apiKey" match "api_key", "db_password" matches "password". Matching the end
// rather than anywhere keeps counters such as "input_tokens" or "token_count", which agents record
// often, readable. No keys turns redaction off.
func newRedactor(keys []string) *redactor {
	r := &redactor{}
	for _, k := range keys {
		if n := normalizeKey(k); n != "" {
			r.suffixes = append(r.suffixes, n)
		}
	}
	return r
}

// normalizeKey lower-cases k and drops everything but letters and digits, so that separators and case
// ("api_key", "Api-Key", "apiKey") do not matter.
func normalizeKey(k string) string {
	return strings.Map(func(c rune) rune {
		if unicode.IsLetter(c) || unicode.IsDigit(c) {
			return unicode.ToLower(c)
		}
		return -1
	}, k)
}

func (r *redactor) secret(key string) bool {
	n := normalizeKey(key)
	for _, s := range r.suffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}
