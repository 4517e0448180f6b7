package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's example (standardwebhooks.com, and its libraries' tests).
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = "1614265330"
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func specHeader(sig string) http.Header {
	h := http.Header{}
	h.Set("Webhook-Id", specID)
	h.Set("Webhook-Timestamp", specTS)
	h.Set("Webhook-Signature", sig)
	return h
}

func TestVerifyStandardAcceptsTheSpecificationsExample(t *testing.T) {
	key, err := parseStandardSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := strconv.ParseInt(specTS, 10, 64)
	now := time.Unix(sec, 0).Add(10 * time.Second)
	for _, sig := range []string{specSig, "v1,AAAA" + " " + specSig, specSig + " v1,AAAA"} {
		if err := verifyStandard(key, specHeader(sig), []byte(specBody), now); err != nil {
			t.Errorf("signature %q refused: %v", sig, err)
		}
	}
	other, _ := parseStandardSecret("whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret of 24 bytes")))
	for name, c := range map[string]struct {
		key  []byte
		h    http.Header
		body string
		now  time.Time
	}{
		"changed body":         {key, specHeader(specSig), `{"test": 2432232315}`, now},
		"other secret":         {other, specHeader(specSig), specBody, now},
		"timestamp too old":    {key, specHeader(specSig), specBody, now.Add(6 * time.Minute)},
		"timestamp in future":  {key, specHeader(specSig), specBody, now.Add(-6 * time.Minute)},
		"other version":        {key, specHeader("v2," + strings.TrimPrefix(specSig, "v1,")), specBody, now},
		"no signature":         {key, specHeader(""), specBody, now},
		"signature not base64": {key, specHeader("v1,!!"), specBody, now},
	} {
		if err := verifyStandard(c.key, c.h, []byte(c.body), c.now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// pushRequest is what the service sends: the event's JSON, signed under secret.
func pushRequest(t *testing.T, url, secret, deliveryID string, ev pushedEvent) *http.Request {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": ev.ID, "receiveTime": ev.ReceiveTime.UTC().Format(time.RFC3339Nano), "payload": "eyJ4IjoxfQ=="})
	if err != nil {
		t.Fatal(err)
	}
	key, err := parseStandardSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(deliveryID + "." + ts + "." + string(body)))
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Webhook-Id", deliveryID)
	req.Header.Set("Webhook-Timestamp", ts)
	req.Header.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return req
}

// The endpoint records an event's first receipt with its receipt-to-delivery latency and answers 204;
// the same event again, and an event stored before the sink started (an earlier run's), are answered 204
// too but counted as duplicates, not recorded; a request whose signature does not verify is refused
// (401) and ends the run with an error.
func TestPushSinkRecordsFirstReceiptsCountsDuplicatesAndRefusesBadSignatures(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	p, err := newPushSink("127.0.0.1:0", secret)
	if err != nil {
		t.Fatal(err)
	}
	p.since = time.Now().Add(-time.Second) // as if the sink had started a second ago
	url := "http://" + p.lis.Addr().String() + "/hooks"
	records := make(chan ackRecord, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, func(r ackRecord) { records <- r }) }()
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(req *http.Request, want int) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("answered %d, want %d", resp.StatusCode, want)
		}
	}
	fresh := pushedEvent{ID: "ev-1", ReceiveTime: time.Now().Add(-500 * time.Millisecond)}
	post(pushRequest(t, url, secret, "1", fresh), http.StatusNoContent)
	select {
	case r := <-records:
		if r.latency < 500*time.Millisecond || r.latency > 10*time.Second {
			t.Errorf("latency %s, want from the event's receiveTime (500 ms before the request) to its receipt", r.latency)
		}
	default:
		t.Fatal("first receipt not recorded by the time it was answered")
	}
	post(pushRequest(t, url, secret, "1", fresh), http.StatusNoContent)
	post(pushRequest(t, url, secret, "7", pushedEvent{ID: "ev-0", ReceiveTime: p.since.Add(-time.Millisecond)}), http.StatusNoContent)
	if len(records) != 0 || p.duplicates() != 2 || p.settles() != 3 {
		t.Fatalf("%d more recorded, %d duplicates, %d settles; want 0, 2, 3", len(records), p.duplicates(), p.settles())
	}
	bad := pushRequest(t, url, secret, "2", pushedEvent{ID: "ev-2", ReceiveTime: time.Now()})
	bad.Header.Set("Webhook-Id", "3") // signed for delivery 2
	post(bad, http.StatusUnauthorized)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no v1 signature matches") {
			t.Fatalf("run ended with %v, want the refused signature", err)
		}
	case <-ctx.Done():
		t.Fatal("a refused request did not end the run")
	}
	if len(records) != 0 {
		t.Fatal("a refused request was recorded")
	}
}
