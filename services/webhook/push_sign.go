package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// The Standard Webhooks primitives (standardwebhooks.com), shared by the push sender, which signs, and the
// standard-webhooks source verifier, which checks what senders signed.

// standardSecretPrefix starts every Standard Webhooks secret.
const standardSecretPrefix = "whsec_"

// parseStandardSecret returns the key a "whsec_<base64>" secret holds. Its errors never repeat the
// secret.
func parseStandardSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, standardSecretPrefix)
	if !ok {
		return nil, errors.New("standard-webhooks secrets must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("standard-webhooks secrets must be whsec_ followed by base64")
	}
	if len(key) < minStandardSecret || len(key) > maxStandardSecret {
		return nil, errors.New("standard-webhooks secrets must hold 24 to 64 bytes")
	}
	return key, nil
}

// standardMAC is the HMAC-SHA256 under key of "<id>.<timestamp>.<body>", the text a Standard Webhooks
// signature covers.
func standardMAC(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// standardSignatures is the webhook-signature header value: "v1,<base64 MAC>" under each key, separated
// by spaces (during a rotation, the new secret's first).
func standardSignatures(keys [][]byte, id, timestamp string, body []byte) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(standardMAC(k, id, timestamp, body)))
	}
	return b.String()
}
