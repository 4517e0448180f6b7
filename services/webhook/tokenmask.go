package webhook

import (
	"bytes"
	"encoding/json"
)

// redactedToken replaces a Zoho channel token in payloads that are read back.
const redactedToken = `"[REDACTED]"`

// maskChannelToken returns a Zoho CRM notification's body with the value of every top-level "token"
// member replaced by "[REDACTED]", every other byte as received. Zoho sends the channel's token back in
// each notification, and that token is all a sender needs to pass the zoho-crm check: shown to whoever
// holds webhook:read, it would let them forge notifications through the public ingress. The stored bytes
// stay exactly as received; only what reads return is masked. A body that is not a JSON object is
// returned unchanged (zoho-crm refuses those at ingest).
func maskChannelToken(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return body
	}
	var out []byte
	last := 0
	for dec.More() {
		// A malformed rest ends the scan; tokens already found stay masked.
		k, err := dec.Token()
		if err != nil {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		if k != "token" {
			continue
		}
		// Decode leaves the offset just after the value, whose raw bytes v holds exactly.
		end := int(dec.InputOffset())
		start := end - len(v)
		out = append(append(out, body[last:start]...), redactedToken...)
		last = end
	}
	if out == nil {
		return body
	}
	return append(out, body[last:]...)
}
