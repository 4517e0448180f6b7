package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"time"
)

// Test senders: each signs a body the way a real sender of its scheme does.

const (
	hmacSecretOld = "old-shared-secret-0123456789"
	hmacSecretNew = "new-shared-secret-9876543210"
)

// whsec returns a Standard Webhooks secret of 32 bytes of b.
func whsec(b byte) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(b)), 32)))
}

func macOf(h func() hash.Hash, secret string, parts ...string) []byte {
	m := hmac.New(h, []byte(secret))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// githubSig is GitHub's X-Hub-Signature-256 value.
func githubSig(secret, body string) string {
	return "sha256=" + hex.EncodeToString(macOf(sha256.New, secret, body))
}

// zohoSig is the original system's X-Zoho-Signature (hex HMAC-SHA256 of the body).
func zohoSig(secret, body string) string { return hex.EncodeToString(macOf(sha256.New, secret, body)) }

// sha1B64Sig is a base64 HMAC-SHA1, as older senders send.
func sha1B64Sig(secret, body string) string {
	return base64.StdEncoding.EncodeToString(macOf(sha1.New, secret, body))
}

// stripeSig is Stripe's Stripe-Signature for time t.
func stripeSig(secret, body string, t time.Time, more ...string) string {
	ts := fmt.Sprint(t.Unix())
	out := "t=" + ts + ",v1=" + hex.EncodeToString(macOf(sha256.New, secret, ts, ".", body))
	for _, m := range more {
		out += ",v1=" + m
	}
	return out + ",v0=" + strings.Repeat("0", 64)
}

// standardSig signs as the Standard Webhooks libraries do, with every secret given.
func standardSig(id string, t time.Time, body string, secrets ...string) (ts, sig string) {
	ts = fmt.Sprint(t.Unix())
	var sigs []string
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			panic(err)
		}
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(macOf(sha256.New, string(key), id, ".", ts, ".", body)))
	}
	return ts, strings.Join(sigs, " ")
}

// zohoBody is a Zoho CRM notification as Zoho sends it.
func zohoBody(channel any, token string, serverTime int64, ids ...string) string {
	ch := fmt.Sprint(channel)
	if s, ok := channel.(string); ok {
		ch = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf(`{"server_time":%d,"query_params":{},"module":"Deals","resource_uri":"https://www.zohoapis.eu/crm/v2/Deals","ids":[%q],"affected_fields":[],"operation":"update","channel_id":%s,"token":%q}`,
		serverTime, strings.Join(ids, `","`), ch, token)
}
