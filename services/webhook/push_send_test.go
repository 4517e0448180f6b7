package webhook

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// sendRig is a pusher over a served (SQLite) server, and a claimed delivery to send, without the store's
// push support: send talks to real HTTP servers on loopback.
type sendRig struct {
	h      *harness
	p      *pusher
	secret string
	target *pushTarget
	c      store.Claimed
}

func newSendRig(t *testing.T, endpoint string, allowPrivate bool, timeout time.Duration) *sendRig {
	t.Helper()
	h := startServiceOn(t, newStore(t, db.SQLite), map[string]string{}, WithKeyring(testPushRing(t)))
	secret := newSigningSecret(t, 32)
	key, err := parseStandardSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	p := &pusher{s: h.srv, cfg: h.srv.cfg.Push, consumer: "push/test", clients: newPushClients(4)}
	t.Cleanup(p.clients.close)
	sub := &store.Subscription{ID: "0190b6a0-0000-7000-8000-0000000000aa", Mode: store.SubscriptionPush,
		Retry: store.RetryPolicy{MaxRetries: 5, BackoffBase: time.Second, BackoffCap: 10 * time.Minute}, LeaseDuration: time.Minute,
		Push: &store.PushConfig{Endpoint: endpoint, AllowPrivateNetwork: allowPrivate, Timeout: timeout}}
	now := h.clock.now()
	ev := &store.Event{ID: "0190b6a0-0000-7000-8000-0000000000ee", Source: "zoho", DedupeKey: "k", Status: store.StatusPending,
		ContentType: "application/json", Payload: []byte(`{"deal":42}`), ReceiveTime: now, UpdateTime: now}
	c := store.Claimed{Delivery: &store.Delivery{ID: 4242, SubscriptionID: sub.ID, EventID: ev.ID, Lease: 1, AttemptCount: 1}, Event: ev}
	return &sendRig{h: h, p: p, secret: secret, target: &pushTarget{sub: sub, key: key}, c: c}
}

func (r *sendRig) send(t *testing.T) pushOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), r.target.sub.Push.Timeout)
	defer cancel()
	return r.p.send(ctx, r.target, r.c)
}

// TestPushSendSignedJSON: the request is the Event as the REST API shows it, with the Standard Webhooks
// headers, and the service's own standard-webhooks verifier accepts it under the subscription's secret.
func TestPushSendSignedJSON(t *testing.T) {
	type got struct {
		h    http.Header
		body []byte
	}
	reqs := make(chan got, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ts.Close()
	r := newSendRig(t, ts.URL+"/hook?x=1", true, 5*time.Second)
	o := r.send(t)
	if !o.ok || o.status != 204 || o.err != "" || o.result != pushResultSuccess {
		t.Fatalf("outcome %+v", o)
	}
	g := <-reqs
	if ct := g.h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if g.h.Get("Webhook-Id") != "4242" || g.h.Get("Webhook-Timestamp") != "1767323045" {
		t.Errorf("headers %v", g.h)
	}
	var ev webhookv1.Event
	if err := protojson.Unmarshal(g.body, &ev); err != nil {
		t.Fatalf("body is not an Event: %v", err)
	}
	if !proto.Equal(&ev, r.h.srv.toProto(r.c.Event)) || !strings.Contains(string(g.body), `"payload":"eyJkZWFsIjo0Mn0="`) {
		t.Errorf("body %s", g.body)
	}
	v, err := newStandardVerifier(nil, [][]byte{[]byte(r.secret)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.verify(t.Context(), &incoming{headers: g.h, body: g.body, now: r.h.clock.now()}); err != nil {
		t.Fatalf("the service's verifier refuses the push: %v", err)
	}
	other, _ := newStandardVerifier(nil, [][]byte{[]byte(newSigningSecret(t, 32))})
	if _, err := other.verify(t.Context(), &incoming{headers: g.h, body: g.body, now: r.h.clock.now()}); err == nil {
		t.Fatal("another secret verifies the push")
	}
}

// TestPushSignaturesDuringRotation: while the previous secret lasts, each request carries a signature
// under each secret (the new one first), so a receiver knowing either accepts it; afterwards only the new.
func TestPushSignaturesDuringRotation(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	secrets := []string{newSigningSecret(t, 32), newSigningSecret(t, 64)}
	var keys [][]byte
	for _, s := range secrets {
		k, err := parseStandardSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	target := &pushTarget{key: keys[0], previous: keys[1], previousUntil: now.Add(time.Hour)}
	body := []byte(`{"id":"e1"}`)
	for _, tc := range []struct {
		at   time.Time
		sigs int
	}{{now, 2}, {now.Add(time.Hour), 1}} {
		sig := standardSignatures(target.keysAt(tc.at), "7", "1767323045", body)
		if n := len(strings.Fields(sig)); n != tc.sigs {
			t.Fatalf("at %v: %d signatures, want %d", tc.at, n, tc.sigs)
		}
		h := http.Header{"Webhook-Id": {"7"}, "Webhook-Timestamp": {"1767323045"}, "Webhook-Signature": {sig}}
		for i, s := range secrets[:tc.sigs] {
			v, _ := newStandardVerifier(nil, [][]byte{[]byte(s)})
			if _, err := v.verify(t.Context(), &incoming{headers: h, body: body, now: now}); err != nil {
				t.Fatalf("secret %d does not verify %q: %v", i, sig, err)
			}
		}
	}
}

// TestPushSendFailures: each way a request fails is recorded with its status, a bounded UTF-8 excerpt
// and an error that names neither the URL nor its query.
func TestPushSendFailures(t *testing.T) {
	var redirected atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		// Longer than the excerpt, with a NUL, an invalid byte and a character cut at the limit.
		io.WriteString(w, "boom\x00\xff"+strings.Repeat("é", 400))
	})
	mux.HandleFunc("/429", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(429)
		io.WriteString(w, "slow down")
	})
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "999999")
		w.WriteHeader(503)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/target", http.StatusFound) })
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { redirected.Add(1) })
	release := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	defer close(release)

	r := newSendRig(t, ts.URL+"/500?token=hunter2", true, 5*time.Second)
	o := r.send(t)
	if o.ok || o.status != 500 || o.err != "HTTP 500" || o.result != pushResultHTTP5xx {
		t.Fatalf("500: %+v", o)
	}
	if len(o.excerpt) > store.MaxResponseExcerpt || !utf8.ValidString(o.excerpt) || strings.Contains(o.excerpt, "\x00") ||
		!strings.HasPrefix(o.excerpt, "boomé") || len(o.excerpt) < store.MaxResponseExcerpt-2 {
		t.Fatalf("excerpt %q (%d bytes)", o.excerpt, len(o.excerpt))
	}

	r.target.sub.Push.Endpoint = ts.URL + "/429"
	if o := r.send(t); o.status != 429 || o.retryAfter != 120*time.Second || o.excerpt != "slow down" || o.result != pushResultHTTP4xx {
		t.Fatalf("429: %+v", o)
	}
	r.target.sub.Push.Endpoint = ts.URL + "/503"
	if o := r.send(t); o.status != 503 || o.retryAfter != r.target.sub.Retry.BackoffCap {
		t.Fatalf("503 with a Retry-After beyond the cap: %+v", o)
	}

	r.target.sub.Push.Endpoint = ts.URL + "/redirect"
	if o := r.send(t); o.ok || o.status != 302 || o.err != "HTTP 302" || o.result != pushResultHTTP3xx {
		t.Fatalf("redirect: %+v", o)
	}
	if redirected.Load() != 0 {
		t.Fatal("the redirect was followed")
	}

	r.target.sub.Push.Endpoint = ts.URL + "/slow?token=hunter2"
	r.target.sub.Push.Timeout = 200 * time.Millisecond
	if o := r.send(t); o.ok || o.status != 0 || o.err != "timeout" || o.result != pushResultTimeout {
		t.Fatalf("slow: %+v", o)
	}

	// Nothing listens on this port once the server is closed.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	r.target.sub.Push.Endpoint = closed.URL + "/x?token=hunter2"
	if o := r.send(t); o.ok || o.err != "connection refused" || o.result != pushResultConnection {
		t.Fatalf("closed port: %+v", o)
	}
}

// TestPushSendRefusesPrivateAddresses: without allow_private_network, an endpoint that resolves to
// loopback is refused before any connection (the server never sees one), by name and by address.
func TestPushSendRefusesPrivateAddresses(t *testing.T) {
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.StartTLS()
	defer ts.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	for _, endpoint := range []string{ts.URL + "/hook", "https://localhost:" + port + "/hook"} {
		r := newSendRig(t, endpoint, false, 5*time.Second)
		o := r.send(t)
		if o.ok || o.status != 0 || o.result != pushResultRefused || !strings.Contains(o.err, "loopback address refused") ||
			strings.Contains(o.err, "127.0.0.1") || strings.Contains(o.err, port) {
			t.Fatalf("%s: %+v", endpoint, o)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the endpoint saw %d connections", n)
	}
}

func TestResponseExcerpt(t *testing.T) {
	for in, want := range map[string]string{"": "", "ok": "ok", "a\x00b": "ab", "\xffx": "x", "é"[:1]: "", "aé": "aé"} {
		if got := responseExcerpt([]byte(in)); got != want {
			t.Errorf("responseExcerpt(%q) = %q, want %q", in, got, want)
		}
	}
}
