package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// standardVerifier implements the Standard Webhooks specification (standardwebhooks.com): the signed
// text is "<webhook-id>.<webhook-timestamp>.<body>", HMAC-SHA256 under the base64 secret after "whsec_",
// sent base64 as "v1,<sig>" in webhook-signature, several separated by spaces.
type standardVerifier struct {
	tolerance time.Duration
	secrets   [][]byte
}

// Standard Webhooks secrets are 24 to 64 random bytes.
const minStandardSecret, maxStandardSecret = 24, 64

func newStandardVerifier(o *StandardWebhooksOptions, raw [][]byte) (*standardVerifier, error) {
	v := &standardVerifier{}
	var err error
	if o == nil {
		o = &StandardWebhooksOptions{}
	}
	if v.tolerance, err = tolerance(o.Tolerance); err != nil {
		return nil, errors.New("standard_webhooks." + err.Error())
	}
	for _, r := range raw {
		key, err := parseStandardSecret(string(r))
		if err != nil {
			return nil, err
		}
		v.secrets = append(v.secrets, key)
	}
	return v, nil
}

func (v *standardVerifier) verify(_ context.Context, d *incoming) (string, error) {
	id, ts, sigHeader := d.headers.Get("Webhook-Id"), d.headers.Get("Webhook-Timestamp"), d.headers.Get("Webhook-Signature")
	if id == "" || ts == "" || sigHeader == "" {
		return "", refuse(reasonMissingSignature, "missing webhook-id, webhook-timestamp or webhook-signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || secs <= 0 || secs > 1<<40 {
		return "", refuse(reasonBadSignature, "webhook-timestamp must be Unix seconds")
	}
	var sigs [][]byte
	for _, f := range strings.Fields(sigHeader) {
		enc, ok := strings.CutPrefix(f, "v1,")
		if !ok || len(sigs) == maxSignatures {
			continue // another version (v1a is asymmetric), or more than anyone sends
		}
		if sig, err := base64.StdEncoding.DecodeString(enc); err == nil && len(sig) == sha256.Size {
			sigs = append(sigs, sig)
		}
	}
	mac := func(secret []byte) []byte { return standardMAC(secret, id, ts, d.body) }
	if len(sigs) == 0 || !anyMAC(mac, v.secrets, sigs) {
		return "", refuse(reasonBadSignature, "signature does not match")
	}
	if !timestampOK(time.Unix(secs, 0), d.now, v.tolerance) {
		return "", refuse(reasonStaleTimestamp, "webhook-timestamp is outside the tolerance of "+v.tolerance.String())
	}
	// The id is signed, so it is the sender's own delivery id: a retry of the same message repeats it.
	return idKey(id), nil
}
