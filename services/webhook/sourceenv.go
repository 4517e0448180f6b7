package webhook

import (
	"errors"
	"fmt"
	"strings"
)

// The environment form, for simple setups: WEBHOOK_SOURCES=name:scheme,… with each source's secrets in
// WEBHOOK_SOURCE_<NAME>_SECRETS (comma-separated; each the secret, env:NAME or file:PATH) and a zoho-crm
// source's channels in WEBHOOK_SOURCE_<NAME>_CHANNELS (channel_id=token,…). <NAME> is the source's name
// in upper case with '-' as '_'. An hmac source here uses the original system's headers
// (X-Zoho-Signature: hex HMAC-SHA256 of the body, X-Zoho-Event-Id); any other option needs the file.

// envHMACDefaults are the hmac options of the environment form.
var envHMACDefaults = HMACOptions{Header: "X-Zoho-Signature", Algorithm: "sha256", Encoding: "hex", EventIDHeader: "X-Zoho-Event-Id"}

// defaultSources is WEBHOOK_SOURCES when it is not set: in development the one source `make run` has
// always offered, unverified (and warned about at start); in production none, so that nothing is
// accepted until an operator says how each source is verified.
func defaultSources(development bool) []string {
	if development {
		return []string{"zoho:" + SchemeNone}
	}
	return nil
}

// sourcesFromEnv reads the environment form. A bare name (no scheme) means none in development and is
// refused in production, where accepting unverified deliveries must be written out as name:none.
func sourcesFromEnv(items []string, development bool, lookup func(string) (string, bool)) ([]SourceConfig, error) {
	var out []SourceConfig
	for _, item := range items {
		name, scheme, hasScheme := strings.Cut(item, ":")
		if err := sourceName(name); err != nil {
			return nil, errors.New("must be a comma-separated list of name or name:scheme (names lower-case letters, digits, '-', '_')")
		}
		if !hasScheme {
			if !development {
				return nil, fmt.Errorf("source %q has no verification scheme: write %[1]s:zoho-crm, %[1]s:hmac or %[1]s:standard-webhooks (or %[1]s:none to accept unverified deliveries)", name)
			}
			scheme = SchemeNone
		}
		c := SourceConfig{Name: name, Scheme: scheme}
		prefix := "WEBHOOK_SOURCE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v, ok := lookup(prefix + "_SECRETS"); ok {
			c.Secrets = splitList(v)
		}
		switch scheme {
		case SchemeHMAC:
			o := envHMACDefaults
			c.HMAC = &o
		case SchemeZohoCRM:
			c.ZohoCRM = &ZohoCRMOptions{Channels: map[string]string{}}
			if v, ok := lookup(prefix + "_CHANNELS"); ok {
				for _, pair := range splitList(v) {
					id, tok, ok := strings.Cut(pair, "=")
					if !ok {
						return nil, fmt.Errorf("%s_CHANNELS must be channel_id=token,…", prefix)
					}
					c.ZohoCRM.Channels[strings.TrimSpace(id)] = strings.TrimSpace(tok)
				}
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
