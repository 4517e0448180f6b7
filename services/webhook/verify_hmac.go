package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// hmacVerifier checks an HMAC of the raw body (or, Stripe-style, of "<t>.<body>") sent in a header.
type hmacVerifier struct {
	header        string // canonical
	newHash       func() hash.Hash
	size          int // of a MAC, in bytes
	base64        bool
	prefix        string
	eventIDHeader string // canonical, "" for none
	timestamped   bool
	tolerance     time.Duration
	secrets       [][]byte
}

// maxSignatures bounds the signatures one header may carry (Stripe and Standard Webhooks send one per
// active secret of the sender), so that a forged header cannot make us compute thousands of MACs.
const maxSignatures = 8

func newHMACVerifier(o *HMACOptions, secrets [][]byte) (*hmacVerifier, error) {
	if o == nil || o.Header == "" {
		return nil, errors.New(`hmac needs "hmac": {"header": …}`)
	}
	if !validHeaderName(o.Header) {
		return nil, errors.New("hmac.header is not an HTTP header name")
	}
	v := &hmacVerifier{header: textproto.CanonicalMIMEHeaderKey(o.Header), prefix: o.Prefix, timestamped: o.Timestamped, secrets: secrets}
	switch strings.ToLower(o.Algorithm) {
	case "", "sha256":
		v.newHash = sha256.New
	case "sha1":
		v.newHash = sha1.New
	default:
		return nil, errors.New("hmac.algorithm must be sha256 or sha1")
	}
	v.size = v.newHash().Size()
	switch strings.ToLower(o.Encoding) {
	case "", "hex":
	case "base64":
		v.base64 = true
	default:
		return nil, errors.New("hmac.encoding must be hex or base64")
	}
	if o.EventIDHeader != "" {
		if !validHeaderName(o.EventIDHeader) {
			return nil, errors.New("hmac.event_id_header is not an HTTP header name")
		}
		v.eventIDHeader = textproto.CanonicalMIMEHeaderKey(o.EventIDHeader)
	}
	if o.Timestamped {
		if o.Prefix != "" {
			return nil, errors.New("hmac.prefix does not apply to a timestamped header (t=…,v1=…)")
		}
		var err error
		if v.tolerance, err = tolerance(o.Tolerance); err != nil {
			return nil, errors.New("hmac." + err.Error())
		}
	} else if o.Tolerance != "" {
		return nil, errors.New("hmac.tolerance applies only with timestamped")
	}
	for _, s := range secrets {
		if len(s) < minHMACSecret {
			return nil, errors.New("hmac secrets must be at least 16 bytes")
		}
	}
	return v, nil
}

func (v *hmacVerifier) verify(_ context.Context, d *incoming) (string, error) {
	value := d.headers.Get(v.header)
	if value == "" {
		return "", refuse(reasonMissingSignature, "missing signature header "+v.header)
	}
	var signedPrefix []byte // Stripe-style: "<t>." before the body, fed to the MAC without copying the body
	var sigs [][]byte
	var t time.Time
	if v.timestamped {
		ts, encoded, ok := parseTimestamped(value)
		if !ok {
			return "", refuse(reasonBadSignature, "signature header "+v.header+" must be t=<unix seconds>,v1=<signature>")
		}
		t = time.Unix(ts, 0)
		signedPrefix = append(strconv.AppendInt(nil, ts, 10), '.')
		for _, e := range encoded {
			if sig, ok := v.decode(e); ok {
				sigs = append(sigs, sig)
			}
		}
	} else {
		encoded, ok := strings.CutPrefix(strings.TrimSpace(value), v.prefix)
		if !ok {
			return "", refuse(reasonBadSignature, "signature header "+v.header+" must start with "+strconv.Quote(v.prefix))
		}
		if sig, ok := v.decode(encoded); ok {
			sigs = append(sigs, sig)
		}
	}
	mac := func(secret []byte) []byte {
		m := hmac.New(v.newHash, secret)
		m.Write(signedPrefix)
		m.Write(d.body)
		return m.Sum(nil)
	}
	if len(sigs) == 0 || !anyMAC(mac, v.secrets, sigs) {
		return "", refuse(reasonBadSignature, "signature does not match")
	}
	// The time is checked once the signature is known to be the sender's, so that a stale refusal is
	// reported only for a genuine (replayed or delayed) delivery.
	if v.timestamped && !timestampOK(t, d.now, v.tolerance) {
		return "", refuse(reasonStaleTimestamp, "signed timestamp is outside the tolerance of "+v.tolerance.String())
	}
	// The signature covers the body (and Stripe's time), not the id header: keyed by the id alone, a
	// copy of one signed delivery sent with another id would be stored again, or, sent with the id of a
	// delivery still to come, would make that delivery a "duplicate" and lose it. The key therefore
	// holds the body's hash too: a sender's retry (same id, same body) is still a repeat.
	if v.eventIDHeader != "" {
		if id := strings.TrimSpace(d.headers.Get(v.eventIDHeader)); id != "" {
			return idKey(id) + "+sha256:" + bodyHash(d.body), nil
		}
	}
	return "", nil
}

// decode turns an encoded signature into bytes; a signature of the wrong length is not one.
func (v *hmacVerifier) decode(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	var b []byte
	var err error
	if v.base64 {
		b, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(s)
		}
	} else {
		b, err = hex.DecodeString(s)
	}
	return b, err == nil && len(b) == v.size
}

// parseTimestamped reads Stripe's "t=1492774577,v1=5257a8…,v1=…,v0=…": the time and the v1 signatures
// (other schemes, such as Stripe's test-mode v0, are ignored).
func parseTimestamped(h string) (ts int64, v1 []string, ok bool) {
	haveT := false
	for _, item := range strings.Split(h, ",") {
		k, val, found := strings.Cut(strings.TrimSpace(item), "=")
		if !found {
			continue
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || haveT || n <= 0 || n > 1<<40 {
				return 0, nil, false
			}
			ts, haveT = n, true
		case "v1":
			if len(v1) < maxSignatures {
				v1 = append(v1, val)
			}
		}
	}
	return ts, v1, haveT && len(v1) > 0
}
