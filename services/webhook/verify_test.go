package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

var verifyNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustSource(t testing.TB, c SourceConfig) *source {
	t.Helper()
	s, err := buildSource(c, sourceDefaults{rate: RateConfig{PerSecond: 10, Burst: 10}, bodyLimit: 1 << 20}, testSecrets)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testSecrets resolves env: references from a fixed table.
var testSecrets = secretResolver(func(name string) (string, bool) {
	v, ok := map[string]string{"GITHUB_SECRET": hmacSecretNew, "ZOHO_CHANNEL_TOKEN": "tok-from-env"}[name]
	return v, ok
})

// check runs src's verifier; reason is "" when the delivery is accepted.
func check(src *source, body string, now time.Time, headers ...string) (key, reason string) {
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Add(headers[i], headers[i+1])
	}
	key, err := src.verifier.verify(context.Background(), &incoming{source: src.name, headers: h, body: []byte(body), now: now})
	var r *refusal
	switch {
	case err == nil:
		return key, ""
	case errors.As(err, &r):
		return "", r.reason
	}
	return "", "error: " + err.Error()
}

type verifyCase struct {
	name    string
	body    string
	headers []string
	reason  string // "" accepted
	key     string // when accepted and not "", the dedupe key expected
}

func runCases(t *testing.T, src *source, cases []verifyCase) {
	t.Helper()
	for _, c := range cases {
		key, reason := check(src, c.body, verifyNow, c.headers...)
		if reason != c.reason {
			t.Errorf("%s: reason %q, want %q", c.name, reason, c.reason)
		}
		if c.reason == "" && c.key != "" && key != c.key {
			t.Errorf("%s: key %q, want %q", c.name, key, c.key)
		}
	}
}

// TestHMACIdHeaderIsNotTrustedAlone: the id header is not signed, so a copy of a signed delivery sent
// under another id, or under the id of a delivery still to come, has its own key: it cannot make the
// real delivery a "duplicate" and lose it.
func TestHMACIdHeaderIsNotTrustedAlone(t *testing.T) {
	src := mustSource(t, SourceConfig{Name: "github", Scheme: SchemeHMAC, Secrets: []string{hmacSecretNew},
		HMAC: &HMACOptions{Header: "x-hub-signature-256", Prefix: "sha256=", EventIDHeader: "X-GitHub-Delivery"}})
	copied, real := `{"action":"opened"}`, `{"action":"closed"}`
	replayed, reason := check(src, copied, verifyNow, "X-Hub-Signature-256", githubSig(hmacSecretNew, copied), "X-Github-Delivery", "d-2")
	if reason != "" {
		t.Fatalf("replayed copy refused: %s", reason)
	}
	genuine, reason := check(src, real, verifyNow, "X-Hub-Signature-256", githubSig(hmacSecretNew, real), "X-Github-Delivery", "d-2")
	if reason != "" || genuine == replayed {
		t.Fatalf("the real delivery d-2 shares the replayed copy's key %q (%s)", genuine, reason)
	}
	retry, _ := check(src, real, verifyNow, "X-Hub-Signature-256", githubSig(hmacSecretNew, real), "X-Github-Delivery", "d-2")
	if retry != genuine {
		t.Fatalf("the sender's retry has key %q, want %q", retry, genuine)
	}
}

func TestHMACGitHubStyle(t *testing.T) {
	src := mustSource(t, SourceConfig{Name: "github", Scheme: SchemeHMAC, Secrets: []string{hmacSecretOld, "env:GITHUB_SECRET"},
		HMAC: &HMACOptions{Header: "x-hub-signature-256", Prefix: "sha256=", EventIDHeader: "X-GitHub-Delivery"}})
	body := `{"action":"opened"}`
	runCases(t, src, []verifyCase{
		{"valid, new secret", body, []string{"X-Hub-Signature-256", githubSig(hmacSecretNew, body), "X-Github-Delivery", "d-1"}, "", "id:d-1+sha256:" + bodyHash([]byte(body))},
		{"valid, old secret during rotation", body, []string{"X-Hub-Signature-256", githubSig(hmacSecretOld, body)}, "", ""},
		{"upper-case hex", body, []string{"X-Hub-Signature-256", strings.ToUpper(githubSig(hmacSecretNew, body)[7:]), "X-Github-Delivery", "d-1"}, reasonBadSignature, ""},
		{"upper-case hex with prefix", body, []string{"X-Hub-Signature-256", "sha256=" + strings.ToUpper(githubSig(hmacSecretNew, body)[7:])}, "", ""},
		{"wrong secret", body, []string{"X-Hub-Signature-256", githubSig("another-secret-entirely", body)}, reasonBadSignature, ""},
		{"tampered body", body + " ", []string{"X-Hub-Signature-256", githubSig(hmacSecretNew, body)}, reasonBadSignature, ""},
		{"missing header", body, nil, reasonMissingSignature, ""},
		{"missing prefix", body, []string{"X-Hub-Signature-256", githubSig(hmacSecretNew, body)[7:]}, reasonBadSignature, ""},
		{"not hex", body, []string{"X-Hub-Signature-256", "sha256=zz"}, reasonBadSignature, ""},
		{"truncated", body, []string{"X-Hub-Signature-256", githubSig(hmacSecretNew, body)[:40]}, reasonBadSignature, ""},
		{"empty body signed", "", []string{"X-Hub-Signature-256", githubSig(hmacSecretNew, "")}, "", ""},
	})
}

func TestHMACZohoOriginalAndSHA1Base64(t *testing.T) {
	zoho := mustSource(t, SourceConfig{Name: "zoho", Scheme: SchemeHMAC, Secrets: []string{hmacSecretNew}, HMAC: &envHMACDefaults})
	body := `{"module":"Deals"}`
	runCases(t, zoho, []verifyCase{
		{"valid", body, []string{"X-Zoho-Signature", zohoSig(hmacSecretNew, body), "X-Zoho-Event-Id", "ev-9"}, "", "id:ev-9+sha256:" + bodyHash([]byte(body))},
		{"old secret no longer configured", body, []string{"X-Zoho-Signature", zohoSig(hmacSecretOld, body)}, reasonBadSignature, ""},
	})
	legacy := mustSource(t, SourceConfig{Name: "legacy", Scheme: SchemeHMAC, Secrets: []string{hmacSecretOld},
		HMAC: &HMACOptions{Header: "X-Signature", Algorithm: "sha1", Encoding: "base64"}})
	runCases(t, legacy, []verifyCase{
		{"sha1 base64", body, []string{"X-Signature", sha1B64Sig(hmacSecretOld, body)}, "", ""},
		{"sha256 where sha1 is configured", body, []string{"X-Signature", zohoSig(hmacSecretOld, body)}, reasonBadSignature, ""},
	})
}

func TestHMACStripeStyle(t *testing.T) {
	src := mustSource(t, SourceConfig{Name: "stripe", Scheme: SchemeHMAC, Secrets: []string{hmacSecretOld, hmacSecretNew},
		HMAC: &HMACOptions{Header: "Stripe-Signature", Timestamped: true, Tolerance: "5m"}})
	body := `{"id":"evt_1","type":"invoice.paid"}`
	newOnly := stripeSig(hmacSecretNew, body, verifyNow)
	// During Stripe's own rotation it signs with both secrets: either one of ours matching is enough.
	both := stripeSig("unknown-secret-aaaaaaaaaaaa", body, verifyNow, strings.TrimPrefix(strings.Split(stripeSig(hmacSecretOld, body, verifyNow), ",")[1], "v1="))
	runCases(t, src, []verifyCase{
		{"valid", body, []string{"Stripe-Signature", newOnly}, "", ""},
		{"one of several v1 matches", body, []string{"Stripe-Signature", both}, "", ""},
		{"wrong secret", body, []string{"Stripe-Signature", stripeSig("wrong-secret-0123456789", body, verifyNow)}, reasonBadSignature, ""},
		{"tampered body", `{"id":"evt_2"}`, []string{"Stripe-Signature", newOnly}, reasonBadSignature, ""},
		{"stale", body, []string{"Stripe-Signature", stripeSig(hmacSecretNew, body, verifyNow.Add(-6*time.Minute))}, reasonStaleTimestamp, ""},
		{"future", body, []string{"Stripe-Signature", stripeSig(hmacSecretNew, body, verifyNow.Add(6*time.Minute))}, reasonStaleTimestamp, ""},
		{"within tolerance", body, []string{"Stripe-Signature", stripeSig(hmacSecretNew, body, verifyNow.Add(-4*time.Minute))}, "", ""},
		{"signature moved to another time", body, []string{"Stripe-Signature", "t=" + fmt.Sprint(verifyNow.Unix()+1) + newOnly[strings.Index(newOnly, ","):]}, reasonBadSignature, ""},
		{"no t", body, []string{"Stripe-Signature", "v1=" + strings.Repeat("ab", 32)}, reasonBadSignature, ""},
		{"two t", body, []string{"Stripe-Signature", "t=1,t=2," + newOnly}, reasonBadSignature, ""},
		{"missing", body, nil, reasonMissingSignature, ""},
	})
}

func TestStandardWebhooks(t *testing.T) {
	oldS, newS := whsec('o'), whsec('n')
	src := mustSource(t, SourceConfig{Name: "svix", Scheme: SchemeStandardWebhooks, Secrets: []string{oldS, newS}})
	body := `{"type":"contact.created"}`
	ts, sig := standardSig("msg_1", verifyNow, body, newS)
	_, sigOld := standardSig("msg_1", verifyNow, body, oldS)
	_, sigBoth := standardSig("msg_1", verifyNow, body, whsec('x'), newS)
	_, wrong := standardSig("msg_1", verifyNow, body, whsec('x'))
	staleTS, staleSig := standardSig("msg_1", verifyNow.Add(-6*time.Minute), body, newS)
	futureTS, futureSig := standardSig("msg_1", verifyNow.Add(6*time.Minute), body, newS)
	h := func(id, ts, sig string) []string {
		return []string{"Webhook-Id", id, "Webhook-Timestamp", ts, "Webhook-Signature", sig}
	}
	runCases(t, src, []verifyCase{
		{"valid", body, h("msg_1", ts, sig), "", "id:msg_1"},
		{"old secret", body, h("msg_1", ts, sigOld), "", "id:msg_1"},
		{"several signatures", body, h("msg_1", ts, sigBoth), "", ""},
		{"wrong secret", body, h("msg_1", ts, wrong), reasonBadSignature, ""},
		{"tampered body", body + "x", h("msg_1", ts, sig), reasonBadSignature, ""},
		{"id changed", body, h("msg_2", ts, sig), reasonBadSignature, ""},
		{"stale", body, h("msg_1", staleTS, staleSig), reasonStaleTimestamp, ""},
		{"future", body, h("msg_1", futureTS, futureSig), reasonStaleTimestamp, ""},
		{"missing id", body, []string{"Webhook-Timestamp", ts, "Webhook-Signature", sig}, reasonMissingSignature, ""},
		{"missing signature", body, []string{"Webhook-Id", "msg_1", "Webhook-Timestamp", ts}, reasonMissingSignature, ""},
		{"timestamp not a number", body, h("msg_1", "soon", sig), reasonBadSignature, ""},
		{"only another version", body, h("msg_1", ts, "v1a,"+strings.Repeat("A", 86)), reasonBadSignature, ""},
	})
}

func TestZohoCRMNotifications(t *testing.T) {
	src := mustSource(t, SourceConfig{Name: "zoho", Scheme: SchemeZohoCRM,
		ZohoCRM: &ZohoCRMOptions{Channels: map[string]string{"1000000068001": "tok-1", "1000000068002": "env:ZOHO_CHANNEL_TOKEN"}}})
	valid := zohoBody(1000000068001, "tok-1", 1700000000000, "4150868000001")
	runCases(t, src, []verifyCase{
		{"valid, numeric channel id", valid, nil, "", "zoho:1000000068001:1700000000000:" + bodyHash([]byte(valid))},
		{"valid, string channel id", zohoBody("1000000068002", "tok-from-env", 1, "1"), nil, "", ""},
		{"wrong token", zohoBody(1000000068001, "tok-2", 1, "1"), nil, reasonBadSignature, ""},
		{"another channel's token", zohoBody(1000000068002, "tok-1", 1, "1"), nil, reasonBadSignature, ""},
		{"unknown channel", zohoBody(1000000069999, "tok-1", 1, "1"), nil, reasonUnknownChannel, ""},
		{"no token", `{"channel_id":1000000068001,"server_time":1}`, nil, reasonMissingSignature, ""},
		{"no channel", `{"token":"tok-1"}`, nil, reasonMissingSignature, ""},
		{"channel not a number", zohoBody(`abc`, "tok-1", 1, "1"), nil, reasonUnknownChannel, ""},
		{"not JSON", `module=Deals`, nil, reasonMalformedBody, ""},
		{"JSON array", `[1]`, nil, reasonMalformedBody, ""},
		{"empty", ``, nil, reasonMalformedBody, ""},
	})
	// The same change notified at another server time is another notification.
	k1, _ := check(src, zohoBody(1000000068001, "tok-1", 1, "7"), verifyNow)
	k2, _ := check(src, zohoBody(1000000068001, "tok-1", 2, "7"), verifyNow)
	if k1 == k2 || k1 == "" {
		t.Fatalf("keys %q %q", k1, k2)
	}
}

// A stored-channel lookup plugs in after the configured tokens; its failure is not a forgery.
func TestZohoStoredChannels(t *testing.T) {
	src := mustSource(t, SourceConfig{Name: "zoho", Scheme: SchemeZohoCRM})
	stored := fileChannels{"42": []byte("stored-token")}
	in := &incoming{source: "zoho", headers: http.Header{}, body: []byte(zohoBody(42, "stored-token", 1, "1")), now: verifyNow, stored: stored}
	if _, err := src.verifier.verify(context.Background(), in); err != nil {
		t.Fatalf("stored channel: %v", err)
	}
	in.stored = failingChannels{}
	var r *refusal
	if _, err := src.verifier.verify(context.Background(), in); err == nil || errors.As(err, &r) {
		t.Fatalf("failing lookup: %v", err)
	}
}

type failingChannels struct{}

func (failingChannels) channelToken(context.Context, string, string) ([]byte, bool, error) {
	return nil, false, errors.New("database down")
}

func TestSourceConfigErrorsNameNoSecret(t *testing.T) {
	secret := "super-secret-value-do-not-log"
	for _, c := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{Name: "a", Scheme: SchemeHMAC, Secrets: []string{"short"}, HMAC: &HMACOptions{Header: "X-Sig"}}, "at least 16 bytes"},
		{SourceConfig{Name: "a", Scheme: SchemeHMAC, Secrets: []string{secret}}, `"header"`},
		{SourceConfig{Name: "a", Scheme: SchemeHMAC, Secrets: []string{secret}, HMAC: &HMACOptions{Header: "X-Sig", Algorithm: "md5"}}, "algorithm"},
		{SourceConfig{Name: "a", Scheme: SchemeHMAC, HMAC: &HMACOptions{Header: "X-Sig"}}, "at least one secret"},
		{SourceConfig{Name: "a", Scheme: SchemeHMAC, Secrets: []string{"env:NOT_SET_ANYWHERE"}, HMAC: &HMACOptions{Header: "X-Sig"}}, "NOT_SET_ANYWHERE"},
		{SourceConfig{Name: "a", Scheme: SchemeHMAC, Secrets: []string{"file:/nonexistent/" + secret}, HMAC: &HMACOptions{Header: "X-Sig"}}, "no such file"},
		{SourceConfig{Name: "a", Scheme: SchemeStandardWebhooks, Secrets: []string{secret}}, "whsec_"},
		{SourceConfig{Name: "a", Scheme: SchemeStandardWebhooks, Secrets: []string{"whsec_" + secret}}, "base64"},
		{SourceConfig{Name: "a", Scheme: SchemeZohoCRM, ZohoCRM: &ZohoCRMOptions{Channels: map[string]string{"1": strings.Repeat("t", 51)}}}, "50"},
		{SourceConfig{Name: "a", Scheme: SchemeZohoCRM, Secrets: []string{secret}}, "channel tokens"},
		{SourceConfig{Name: "a", Scheme: SchemeNone, Secrets: []string{secret}}, "no secrets"},
		{SourceConfig{Name: "a"}, "scheme is missing"},
		{SourceConfig{Name: "a", Scheme: "basic"}, "scheme must be"},
		{SourceConfig{Name: "A b", Scheme: SchemeNone}, "name"},
		{SourceConfig{Name: "a", Scheme: SchemeNone, BodyLimit: 1 << 30}, "body_limit"},
		{SourceConfig{Name: "a", Scheme: SchemeHMAC, Secrets: []string{secret}, HMAC: &HMACOptions{Header: "X-Sig", EventIDHeader: "x-api-key"}}, "WEBHOOK_HEADER_DENYLIST"},
	} {
		deny, _ := headerDenylist(DefaultHeaderDenylist)
		_, err := buildSources([]SourceConfig{c.cfg}, sourceDefaults{rate: RateConfig{1, 1}, bodyLimit: 1 << 20, deny: deny}, testSecrets, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want it to mention %q", c.cfg, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "super-secret") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}
