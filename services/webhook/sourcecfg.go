package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sergas/core/internal/validate"
)

// The verification schemes a source can name.
const (
	SchemeZohoCRM          = "zoho-crm"
	SchemeHMAC             = "hmac"
	SchemeStandardWebhooks = "standard-webhooks"
	SchemeNone             = "none"
)

// SourceConfig is one source as written in WEBHOOK_SOURCES_FILE ({"sources":[…]}) or built from the
// environment form. Secrets are written as the secret itself, "env:NAME" (the value of environment
// variable NAME) or "file:PATH" (the contents of PATH, surrounding white space removed): a reference
// keeps the secret out of the sources file, which can then be kept in version control.
type SourceConfig struct {
	Name   string `json:"name"`
	Scheme string `json:"scheme"`
	// Secrets verify signatures (hmac, standard-webhooks): every one is tried, so that a rotation adds
	// the new secret, waits until the sender uses it, then removes the old one.
	Secrets []string `json:"secrets,omitempty"`
	// RateLimit overrides WEBHOOK_RATE_LIMIT_PER_SECOND / _BURST for this source.
	RateLimit *RateConfig `json:"rate_limit,omitempty"`
	// BodyLimit overrides WEBHOOK_MAX_BODY_BYTES for this source (it cannot raise it).
	BodyLimit int `json:"body_limit,omitempty"`
	// HMAC holds the hmac scheme's options.
	HMAC *HMACOptions `json:"hmac,omitempty"`
	// StandardWebhooks holds the standard-webhooks scheme's options.
	StandardWebhooks *StandardWebhooksOptions `json:"standard_webhooks,omitempty"`
	// ZohoCRM holds the zoho-crm scheme's options.
	ZohoCRM *ZohoCRMOptions `json:"zoho_crm,omitempty"`
	// EventTypePointer is an RFC 6901 JSON pointer into the body ("/type") whose value is stored as the
	// event's type (normalise.go).
	EventTypePointer string `json:"event_type_pointer,omitempty"`
}

// RateConfig is a source's own rate limit.
type RateConfig struct {
	PerSecond int `json:"per_second"`
	Burst     int `json:"burst"`
}

// HMACOptions describe how a sender signs with a shared secret.
type HMACOptions struct {
	// Header carries the signature, e.g. X-Hub-Signature-256, X-Zoho-Signature, Stripe-Signature.
	Header string `json:"header"`
	// Algorithm is sha256 (default) or sha1.
	Algorithm string `json:"algorithm,omitempty"`
	// Encoding of the signature: hex (default) or base64.
	Encoding string `json:"encoding,omitempty"`
	// Prefix precedes the signature in the header, e.g. "sha256=".
	Prefix string `json:"prefix,omitempty"`
	// EventIDHeader, when set, carries the sender's delivery id, the key that makes a repeat a duplicate;
	// without it the body's SHA-256 is the key.
	EventIDHeader string `json:"event_id_header,omitempty"`
	// Timestamped: the header is Stripe's "t=<unix seconds>,v1=<sig>[,v1=<sig>…]" and the signed text is
	// "<t>.<body>"; deliveries whose t is further than Tolerance from now are refused.
	Timestamped bool `json:"timestamped,omitempty"`
	// Tolerance for Timestamped, as a Go duration ("5m" by default).
	Tolerance string `json:"tolerance,omitempty"`
}

// StandardWebhooksOptions are the standard-webhooks scheme's options.
type StandardWebhooksOptions struct {
	// Tolerance of webhook-timestamp, as a Go duration ("5m" by default).
	Tolerance string `json:"tolerance,omitempty"`
}

// ZohoCRMOptions are the zoho-crm scheme's options.
type ZohoCRMOptions struct {
	// Channels maps each notification channel's id to the token it was enabled with (a secret, so also
	// "env:NAME" or "file:PATH").
	Channels map[string]string `json:"channels"`
}

// sourcesDoc is the file's shape.
type sourcesDoc struct {
	Sources []SourceConfig `json:"sources"`
}

// Limits a source file entry must respect.
const (
	defaultTolerance = 5 * time.Minute
	maxTolerance     = 24 * time.Hour
	minHMACSecret    = 16 // bytes: shorter shared secrets can be guessed offline from one signed delivery
	maxZohoToken     = 50 // Zoho CRM's own limit on a channel token
	maxSecrets       = 16
)

// parseSourcesFile reads the file's JSON. Its errors name the entry and the field, never a value.
func parseSourcesFile(raw []byte) ([]SourceConfig, error) {
	var doc sourcesDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("not valid JSON (at byte %d)", se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return nil, errors.New("not valid JSON (it ends too early)")
		case errors.As(err, &te):
			return nil, fmt.Errorf("field %s has the wrong type", te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return nil, errors.New(`not of the form {"sources":[…]}`)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON document")
	}
	return doc.Sources, nil
}

// secretResolver turns a secret as written into its bytes.
type secretResolver func(name string) (string, bool)

// resolve returns the secret s stands for; the error names the reference, never the secret.
func (lookup secretResolver) resolve(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "env:"):
		name := strings.TrimPrefix(s, "env:")
		v, ok := lookup(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("environment variable %s (named by env:) is not set", name)
		}
		return []byte(v), nil
	case strings.HasPrefix(s, "file:"):
		path := strings.TrimPrefix(s, "file:")
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read the secret file named by file: (%s)", describeFileError(err))
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return nil, errors.New("the secret file named by file: is empty")
		}
		return raw, nil
	case s == "":
		return nil, errors.New("a secret is empty")
	}
	return []byte(s), nil
}

// describeFileError says why a file could not be read without naming it (the path may tell more than
// an operator wants in a log line) or echoing the OS's message.
func describeFileError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return "read error"
}

// sourceName checks a source's name as the URL and ListEvents filters use it.
func sourceName(n string) error {
	if err := validate.Name("source", n); err != nil {
		return errors.New("name must be a lower-case name (letters, digits, '-', '_')")
	}
	return nil
}

// tolerance parses a tolerance option.
func tolerance(s string) (time.Duration, error) {
	if s == "" {
		return defaultTolerance, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > maxTolerance {
		return 0, fmt.Errorf("tolerance must be a duration between 1s and %s", maxTolerance)
	}
	return d, nil
}
