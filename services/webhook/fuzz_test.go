package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/grpcserver"
)

// The fuzz targets check properties that must hold for any input: a verifier never panics, accepts only
// what is correctly signed, and refuses with one of the known reasons; Ingest answers every request with
// a status the gateway maps (never Internal) and stores only what verified. `make test` runs the seeds;
// `make fuzz` explores.

var knownReasons = map[string]bool{reasonMissingSignature: true, reasonBadSignature: true, reasonStaleTimestamp: true,
	reasonUnknownChannel: true, reasonMalformedBody: true}

// fuzzVerify runs src's verifier on (header value, body) and checks the answer is a known one.
func fuzzVerify(t *testing.T, src *source, body []byte, headers http.Header) (accepted bool) {
	_, err := src.verifier.verify(context.Background(), &incoming{source: src.name, headers: headers, body: body, now: verifyNow})
	if err == nil {
		return true
	}
	var r *refusal
	if !errors.As(err, &r) || !knownReasons[r.reason] {
		t.Fatalf("unexpected answer %v", err)
	}
	return false
}

func FuzzHMACVerifier(f *testing.F) {
	body := `{"action":"opened"}`
	f.Add([]byte(body), githubSig(hmacSecretNew, body))
	f.Add([]byte(body), githubSig("another-secret-0123456789", body))
	f.Add([]byte(""), "sha256=")
	f.Add([]byte("x"), "sha256="+strings.Repeat("0", 64))
	src := mustSource(f, SourceConfig{Name: "github", Scheme: SchemeHMAC, Secrets: []string{hmacSecretNew},
		HMAC: &HMACOptions{Header: "X-Hub-Signature-256", Prefix: "sha256="}})
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		ok := fuzzVerify(t, src, body, http.Header{"X-Hub-Signature-256": {sig}})
		// Hex is compared by value, so only the case of the digits may differ from ours.
		hexPart, prefixed := strings.CutPrefix(strings.TrimSpace(sig), "sha256=")
		want := prefixed && strings.EqualFold(strings.TrimSpace(hexPart), githubSig(hmacSecretNew, string(body))[7:])
		if ok != want {
			t.Fatalf("accepted=%v for %q over %q", ok, sig, body)
		}
	})
}

func FuzzStripeVerifier(f *testing.F) {
	body := `{"id":"evt_1"}`
	f.Add([]byte(body), stripeSig(hmacSecretNew, body, verifyNow))
	f.Add([]byte(body), stripeSig(hmacSecretNew, body, verifyNow.Add(-time.Hour)))
	f.Add([]byte(body), "t=,v1=")
	f.Add([]byte(body), "t=1,t=2,v1=00")
	src := mustSource(f, SourceConfig{Name: "stripe", Scheme: SchemeHMAC, Secrets: []string{hmacSecretNew},
		HMAC: &HMACOptions{Header: "Stripe-Signature", Timestamped: true}})
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if fuzzVerify(t, src, body, http.Header{"Stripe-Signature": {header}}) {
			ts, _, ok := parseTimestamped(header)
			if !ok || !timestampOK(time.Unix(ts, 0), verifyNow, defaultTolerance) {
				t.Fatalf("accepted %q", header)
			}
		}
	})
}

func FuzzStandardWebhooksVerifier(f *testing.F) {
	body := `{"type":"x"}`
	ts, sig := standardSig("msg_1", verifyNow, body, whsec('n'))
	f.Add([]byte(body), "msg_1", ts, sig)
	f.Add([]byte(body), "msg_1", ts, "v1,"+strings.Repeat("A", 44)+" v1a,xyz")
	f.Add([]byte(""), "", "", "")
	src := mustSource(f, SourceConfig{Name: "svix", Scheme: SchemeStandardWebhooks, Secrets: []string{whsec('n')}})
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec('n'), "whsec_"))
	f.Fuzz(func(t *testing.T, body []byte, id, ts, sig string) {
		h := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}
		if fuzzVerify(t, src, body, h) {
			want := "v1," + base64.StdEncoding.EncodeToString(macOf(sha256.New, string(key), id, ".", ts, ".", string(body)))
			if !slices.Contains(strings.Fields(sig), want) {
				t.Fatalf("accepted %q %q %q", id, ts, sig)
			}
		}
	})
}

func FuzzZohoVerifier(f *testing.F) {
	f.Add([]byte(zohoBody(1000000068001, "tok-1", 1700000000000, "1")))
	f.Add([]byte(zohoBody("1000000068001", "tok-2", 1, "1")))
	f.Add([]byte(`{"channel_id":null,"token":null}`))
	f.Add([]byte(`{"channel_id":1e400,"token":"tok-1"}`))
	f.Add([]byte(`[`))
	src := mustSource(f, SourceConfig{Name: "zoho", Scheme: SchemeZohoCRM, ZohoCRM: &ZohoCRMOptions{Channels: map[string]string{"1000000068001": "tok-1"}}})
	f.Fuzz(func(t *testing.T, body []byte) {
		if fuzzVerify(t, src, body, http.Header{}) && !strings.Contains(string(body), "tok-1") && !strings.Contains(string(body), `\u`) {
			t.Fatalf("accepted without the token: %q", body)
		}
	})
}

func FuzzSourcesFile(f *testing.F) {
	f.Add([]byte(testSourcesFile()))
	f.Add([]byte(`{"sources":[{"name":"a","scheme":"none"}]}`))
	f.Add([]byte(`{"sources":[{"name":"a","scheme":"hmac","secrets":["env:X"],"hmac":{"header":"X"}}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfgs, err := parseSourcesFile(raw)
		if err != nil {
			return
		}
		set, err := buildSources(cfgs, sourceDefaults{rate: RateConfig{1, 1}, bodyLimit: 1 << 20}, testSecrets, nil)
		if err != nil {
			return
		}
		for name, s := range set {
			if s.verifier == nil || s.name != name || sourceName(name) != nil {
				t.Fatalf("source %q built without a verifier or a valid name", name)
			}
		}
	})
}

// FuzzIngest sends arbitrary source, headers and body to a real server (SQLite file): it never answers
// Internal, and whatever it stores was verified (the sources here all verify).
func FuzzIngest(f *testing.F) {
	body := `{"n":1}`
	ts, sig := standardSig("msg_1", verifyNow, body, whsec('n'))
	f.Add("github", "X-Hub-Signature-256", githubSig(hmacSecretNew, body), []byte(body))
	f.Add("svix", "Webhook-Signature", sig+"\x00"+ts, []byte(body))
	f.Add("zoho", "Content-Type", "application/json", []byte(zohoBody(1000000068001, "tok-1", 1, "1")))
	f.Add("zoho", "Authorization ", "Bearer x", []byte("{}"))
	f.Add("../etc", "X", "\xff", []byte{0, 1, 2})
	f.Add("zoho", "X", "y", []byte(`{"channel_id":1000000068001,"token":"tok-1","server_time":"\u0000"}`))
	f.Add("small", "X-Long", strings.Repeat("v", 70000), []byte(strings.Repeat("x", 17)))
	env := config.FromMap(map[string]string{"WEBHOOK_SOURCES_FILE": writeTemp(f, testSourcesFile()),
		"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0", "WEBHOOK_MAX_QUEUE_SIZE": "0"})
	cfg := LoadConfig(env)
	if err := env.Err(); err != nil {
		f.Fatal(err)
	}
	// Both backends when PostgreSQL is there: what one stores the other must too (NUL in a key is a 500
	// only on PostgreSQL).
	var servers []*Server
	for _, d := range dbtest.Dialects {
		if d == db.Postgres && os.Getenv("TEST_DATABASE_URL") == "" {
			continue
		}
		srv := NewServer(newStore(f, d), cfg)
		srv.now = func() time.Time { return verifyNow }
		servers = append(servers, srv)
	}
	f.Fuzz(func(t *testing.T, source, header, value string, body []byte) {
		for _, srv := range servers {
			fuzzIngestOne(t, srv, source, header, value, body, ts)
		}
	})
}

func fuzzIngestOne(t *testing.T, srv *Server, source, header, value string, body []byte, ts string) {
	req := &webhookv1.IngestRequest{Source: source, Body: body,
		Headers: []*webhookv1.Header{{Name: header, Values: []string{value}}, {Name: "Webhook-Id", Values: []string{"msg_1"}},
			{Name: "Webhook-Timestamp", Values: []string{ts}}}}
	ctx := auth.WithClientAddr(context.Background(), "198.51.100.7")
	resp, err := srv.Ingest(ctx, req)
	if err != nil {
		if c := status.Code(grpcserver.ToStatus(err)); c == codes.Internal || c == codes.Unknown {
			t.Fatalf("Ingest answered %v", err)
		}
		return
	}
	if source == "small" || resp.GetEventId() == "" {
		return // scheme none stores anything within its limits
	}
	src := srv.sources.get()[source]
	h := http.Header{}
	for _, hd := range req.Headers {
		for _, v := range hd.Values {
			h.Add(hd.Name, v)
		}
	}
	if _, err := src.verifier.verify(context.Background(), &incoming{source: source, headers: h, body: body, now: verifyNow}); err != nil {
		t.Fatalf("stored a delivery that does not verify: %v", err)
	}
}

func writeTemp(tb testing.TB, content string) string {
	tb.Helper()
	path := tb.TempDir() + "/sources.json"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
