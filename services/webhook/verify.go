package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// A verifier decides whether a delivery comes from its source's sender. It sees the raw body exactly as
// received and returns the key that makes a repeat of the same delivery a duplicate ("" for the
// default: a delivery id header or the body's SHA-256), or a *refusal.
type verifier interface {
	verify(ctx context.Context, d *incoming) (dedupeKey string, err error)
}

// incoming is what a verifier sees of one request.
type incoming struct {
	source  string
	headers http.Header // canonical names
	body    []byte
	now     time.Time
	// stored are the channels the service keeps besides the configured ones (nil for none).
	stored channelTokens
}

// Refusal reasons: the label values of webhook_ingest_refused_total (a fixed set) and what the audit
// log records of a delivery that failed verification.
const (
	reasonUnknownSource    = "unknown_source"
	reasonBodyTooLarge     = "body_too_large"
	reasonMalformedHeaders = "malformed_headers"
	reasonMalformedBody    = "malformed_body"
	reasonMissingSignature = "missing_signature"
	reasonBadSignature     = "bad_signature"
	reasonStaleTimestamp   = "stale_timestamp"
	reasonUnknownChannel   = "unknown_channel"
	reasonAddressLimited   = "address_rate_limited"
	reasonSourceLimited    = "source_rate_limited"
	reasonBacklogFull      = "backlog_full"
	reasonStoreError       = "store_error"
	// reasonChannelKeys: a managed channel's token could not be opened (WEBHOOK_ENCRYPTION_KEYS lacks
	// the key that sealed it); the sender is told to retry, the operator must restore the key.
	reasonChannelKeys = "channel_keys"
)

// refusal is a verifier's answer to a delivery it does not accept. msg is for the sender: it says what
// was wrong (missing header, stale timestamp) and never anything about the secrets.
type refusal struct {
	reason string
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func refuse(reason, msg string) *refusal { return &refusal{reason: reason, msg: msg} }

// unauthenticated reports whether the refusal is about who sent the delivery (401), as opposed to its
// shape (400).
func (r *refusal) unauthenticated() bool { return r.reason != reasonMalformedBody }

// anyMAC reports whether sig equals the MAC of msg under one of secrets, comparing in constant time.
// Every secret is tried even after a match, so that the time taken does not say which one matched.
func anyMAC(mac func(secret []byte) []byte, secrets [][]byte, sigs [][]byte) bool {
	ok := 0
	for _, s := range secrets {
		want := mac(s)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				ok = 1
			}
		}
	}
	return ok == 1
}

// bodyHash is the hex SHA-256 of a body.
func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// idKey is the dedupe key of a sender's delivery id: the id itself when short, its hash otherwise (the
// key is stored and indexed).
func idKey(id string) string {
	if len(id) <= 256 {
		return "id:" + id
	}
	return "idsha256:" + bodyHash([]byte(id))
}

// timestampOK reports whether a sender's signed time t is within tol of now, in the past or the future.
func timestampOK(t, now time.Time, tol time.Duration) bool {
	d := now.Sub(t)
	return d <= tol && d >= -tol
}

// noneVerifier accepts every delivery: the scheme none, only when configured by name.
type noneVerifier struct{}

func (noneVerifier) verify(context.Context, *incoming) (string, error) { return "", nil }
