package webhook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// pushRig is a served webhook service on a real database with its push workers running and a keyring;
// its clock stands still until a test moves it (backoff and Retry-After follow it), while requests and
// their timeouts run on real time.
type pushRig struct {
	*harness
	ds store.DeliveryStore
	n  int
	// stop stops the workers as the platform does at shutdown; stopped is closed once all have returned.
	stop    func()
	stopped chan struct{}
}

// newPushRig starts the rig; env adds to (or overrides) its settings: 2 workers, batches of 4.
func newPushRig(t *testing.T, d db.Dialect, env ...string) *pushRig {
	t.Helper()
	return newPushRigWith(t, d, nil, env...)
}

// newPushRigWith is newPushRig with server options besides the keyring.
func newPushRigWith(t *testing.T, d db.Dialect, opts []Option, env ...string) *pushRig {
	t.Helper()
	m := map[string]string{"WEBHOOK_NUM_WORKERS": "2", "WEBHOOK_BATCH_SIZE": "4",
		"WEBHOOK_RECEIVE_POLL_INTERVAL": "20ms", "WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0", "WEBHOOK_RATE_LIMIT_PER_SECOND": "0"}
	for i := 0; i+1 < len(env); i += 2 {
		m[env[i]] = env[i+1]
	}
	// The harness does not apply the consume settings (the service's main passes them as an option):
	// without this WEBHOOK_RECEIVE_POLL_INTERVAL was ignored and every rig polled every 100 ms.
	consume := LoadConsumeConfig(config.FromMap(m))
	h := startServiceOn(t, newStore(t, d), m, append([]Option{WithKeyring(testPushRing(t)), WithConsumeConfig(consume)}, opts...)...)
	if h.srv.deliveries == nil {
		t.Fatalf("the %s store keeps no deliveries", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range h.srv.pushWorkers() {
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Error("push workers did not stop in 20s")
		}
	})
	t.Cleanup(stop)
	return &pushRig{harness: h, ds: h.srv.deliveries, stop: cancel, stopped: stopped}
}

// createPush creates a push subscription to endpoint with a fast retry policy.
func (r *pushRig) createPush(t *testing.T, name, endpoint, secret string, allowPrivate bool, timeout time.Duration) *webhookv1.Subscription {
	t.Helper()
	retries := int32(5)
	resp, err := r.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: name,
		Mode:        webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
		Push:        &webhookv1.PushConfig{Endpoint: endpoint, AllowPrivateNetwork: allowPrivate, Timeout: durationpb.New(timeout), SigningSecret: secret},
		RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: &retries, BackoffBase: durationpb.New(10 * time.Millisecond), BackoffCap: durationpb.New(10 * time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetSubscription()
}

func (r *pushRig) ingest(t *testing.T) string {
	t.Helper()
	r.n++
	resp, err := r.client.Ingest(from(t, "192.0.2.9"), delivery(fmt.Sprintf(`{"n":%d}`, r.n)))
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEventId()
}

// only returns the subscription's one delivery, with its attempts.
func (r *pushRig) only(t *testing.T, sub string) (*store.Delivery, []store.Attempt) {
	t.Helper()
	ds, err := r.ds.DeliveryList(t.Context(), store.DeliveryListParams{SubscriptionID: sub, Limit: 10})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries of %s: %d, %v", sub, len(ds), err)
	}
	d, as, err := r.ds.DeliveryGet(t.Context(), ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return d, as
}

// waitAttempts waits until the subscription's delivery has n attempts recorded.
func (r *pushRig) waitAttempts(t *testing.T, sub string, n int) (*store.Delivery, []store.Attempt) {
	t.Helper()
	var d *store.Delivery
	var as []store.Attempt
	testutil.Eventually(t, 15*time.Second, fmt.Sprintf("attempt %d recorded", n), func() bool {
		d, as = r.only(t, sub)
		return len(as) >= n && d.Status != store.DeliveryLeased
	})
	if len(as) != n {
		t.Fatalf("%d attempts, want %d: %+v", len(as), n, as)
	}
	return d, as
}

type pushed struct {
	h    http.Header
	body []byte
}

// TestPushRetriesUntilDelivered: an endpoint that answers 500, then 429 with Retry-After, then too slowly,
// then 200: the delivery is retried after each (no sooner than Retry-After asks), delivered by the fourth
// attempt, and its attempt history holds each status, excerpt and error. Every request verifies with the
// service's own Standard Webhooks verifier.
func TestPushRetriesUntilDelivered(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d)
		reqs := make(chan pushed, 10)
		var calls, wrongQuery atomic.Int32
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.RawQuery != "tenant=7" { // the endpoint is called whole, though answers hide its query
				wrongQuery.Add(1)
			}
			b, _ := io.ReadAll(req.Body)
			reqs <- pushed{req.Header.Clone(), b}
			switch calls.Add(1) {
			case 1:
				w.WriteHeader(500)
				io.WriteString(w, "boom")
			case 2:
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(429)
				io.WriteString(w, "slow down")
			case 3:
				<-req.Context().Done() // longer than the subscription's timeout
			default:
				io.WriteString(w, "ok")
			}
		}))
		defer ts.Close()
		secret := newSigningSecret(t, 32)
		sub := r.createPush(t, "hook", ts.URL+"/hook?tenant=7", secret, true, time.Second)
		if sub.GetPush().GetEndpoint() != ts.URL+"/hook?REDACTED" || sub.GetPush().GetSigningSecret() != "" {
			t.Fatalf("subscription push %v", sub.GetPush())
		}
		t.Cleanup(func() {
			if n := wrongQuery.Load(); n > 0 {
				t.Errorf("%d requests without the endpoint's query", n)
			}
		})
		eventID := r.ingest(t)
		verifier, err := newStandardVerifier(nil, [][]byte{[]byte(secret)})
		if err != nil {
			t.Fatal(err)
		}
		next := func() pushed {
			t.Helper()
			select {
			case p := <-reqs:
				if _, err := verifier.verify(t.Context(), &incoming{headers: p.h, body: p.body, now: r.clock.now()}); err != nil {
					t.Fatalf("push does not verify: %v", err)
				}
				if !strings.Contains(string(p.body), eventID) {
					t.Fatalf("body %s is not event %s", p.body, eventID)
				}
				return p
			case <-time.After(15 * time.Second):
				t.Fatal("no push within 15s")
				return pushed{}
			}
		}
		first := next()
		del, as := r.waitAttempts(t, sub.GetId(), 1)
		if del.Status != store.DeliveryFailed || first.h.Get("Webhook-Id") != fmt.Sprint(del.ID) {
			t.Fatalf("after 500: %+v, webhook-id %q", del, first.h.Get("Webhook-Id"))
		}
		r.clock.advance(time.Second) // past the backoff (10 ms, jittered)
		next()
		del, _ = r.waitAttempts(t, sub.GetId(), 2)
		if want := r.clock.now().Add(120 * time.Second); del.Status != store.DeliveryFailed || !del.AvailableTime.Equal(want) {
			t.Fatalf("after 429 with Retry-After 120: %s at %v, want failed at %v", statusName(del.Status), del.AvailableTime, want)
		}
		r.clock.advance(121 * time.Second)
		next()
		r.waitAttempts(t, sub.GetId(), 3)
		r.clock.advance(time.Minute)
		last := next()
		del, as = r.waitAttempts(t, sub.GetId(), 4)
		if del.Status != store.DeliveryDelivered {
			t.Fatalf("after 200: %s", statusName(del.Status))
		}
		if last.h.Get("Webhook-Id") != first.h.Get("Webhook-Id") {
			t.Errorf("webhook-id changed between attempts: %q, %q", first.h.Get("Webhook-Id"), last.h.Get("Webhook-Id"))
		}
		want := []store.Attempt{
			{Outcome: store.AttemptNacked, Error: "HTTP 500", HTTPStatus: 500, Response: "boom"},
			{Outcome: store.AttemptNacked, Error: "HTTP 429", HTTPStatus: 429, Response: "slow down"},
			{Outcome: store.AttemptNacked, Error: "timeout"},
			{Outcome: store.AttemptAcked, HTTPStatus: 200, Response: "ok"},
		}
		for i, a := range as {
			w := want[i]
			if a.Outcome != w.Outcome || a.Error != w.Error || a.HTTPStatus != w.HTTPStatus || a.Response != w.Response || !strings.HasPrefix(a.Consumer, "push/") {
				t.Errorf("attempt %d: %+v, want %+v", i+1, a, w)
			}
		}
		ev, err := r.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: eventID})
		if err != nil || ev.GetEvent().GetStatus() != webhookv1.EventStatus_EVENT_STATUS_DELIVERED {
			t.Fatalf("event: %v %v", ev.GetEvent().GetStatus(), err)
		}
	})
}

func statusName(s store.DeliveryStatus) string { return webhookv1.DeliveryStatus(s).String() }

// TestPushRefusesPrivateNetwork: a subscription without allow_private_network whose endpoint resolves to
// loopback records a failed attempt naming the address class, and the endpoint never sees a connection.
// The subscription is stored directly: CreateSubscription already refuses a literal loopback endpoint,
// and the dial-time check is what stops a name that resolves to one.
func TestPushRefusesPrivateNetwork(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d)
		var conns atomic.Int32
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		ts.StartTLS()
		defer ts.Close()
		_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
		if _, err := r.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "direct", Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
			Push: &webhookv1.PushConfig{Endpoint: ts.URL, SigningSecret: newSigningSecret(t, 32)}}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("literal loopback endpoint: %v", err)
		}
		now := r.clock.now()
		sub := &store.Subscription{ID: "0190b6a0-0000-7000-8000-0000000000ab", Name: "internal", State: store.SubscriptionActive,
			Retry: store.RetryPolicy{MaxRetries: 3, BackoffBase: time.Second, BackoffCap: time.Minute}, LeaseDuration: 30 * time.Second,
			CreateTime: now, UpdateTime: now, Mode: store.SubscriptionPush}
		sealed, err := r.srv.sealSigningSecret(sub.ID, "secret", newSigningSecret(t, 32))
		if err != nil {
			t.Fatal(err)
		}
		sub.Push = &store.PushConfig{Endpoint: "https://localhost:" + port + "/hook", Timeout: 5 * time.Second, Secret: sealed}
		if err := r.ds.SubscriptionCreate(t.Context(), sub); err != nil {
			t.Fatal(err)
		}
		pushChanged()
		r.ingest(t)
		del, as := r.waitAttempts(t, sub.ID, 1)
		if del.Status != store.DeliveryFailed || as[0].HTTPStatus != 0 || !strings.Contains(as[0].Error, "loopback address refused") ||
			strings.Contains(as[0].Error, port) || strings.Contains(as[0].Error, "127.0.0.1") {
			t.Fatalf("delivery %s, attempt %+v", statusName(del.Status), as[0])
		}
		if n := conns.Load(); n != 0 {
			t.Fatalf("the endpoint saw %d connections", n)
		}
	})
}

// TestPushRotation: after RotateSigningSecret each push carries a signature under the new secret and one
// under the previous while it lasts, so a receiver knowing either accepts it; a rotation with ttl 0 drops
// the previous one at once. Refusals: a pull subscription, a bad secret or ttl, an unknown id.
func TestPushRotation(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d)
		reqs := make(chan pushed, 10)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			b, _ := io.ReadAll(req.Body)
			reqs <- pushed{req.Header.Clone(), b}
		}))
		defer ts.Close()
		a, b, c := newSigningSecret(t, 32), newSigningSecret(t, 48), newSigningSecret(t, 64)
		sub := r.createPush(t, "hook", ts.URL, a, true, time.Second)
		rotate := func(secret string, ttl *durationpb.Duration) (*webhookv1.Subscription, error) {
			resp, err := r.client.RotateSigningSecret(t.Context(), &webhookv1.RotateSigningSecretRequest{Id: sub.GetId(), SigningSecret: secret, PreviousSecretTtl: ttl})
			return resp.GetSubscription(), err
		}
		rotated, err := rotate(b, durationpb.New(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got := rotated.GetPush().GetPreviousSecretExpireTime().AsTime(); !got.Equal(r.clock.now().Add(time.Hour)) {
			t.Fatalf("previous secret expires %v", got)
		}
		got, err := r.client.GetSubscription(t.Context(), &webhookv1.GetSubscriptionRequest{Id: sub.GetId()})
		if err != nil || got.GetSubscription().GetPush().GetPreviousSecretExpireTime() == nil || got.GetSubscription().GetPush().GetSigningSecret() != "" {
			t.Fatalf("get after rotation: %v %v", got.GetSubscription().GetPush(), err)
		}
		verifies := func(p pushed, secret string) bool {
			v, err := newStandardVerifier(nil, [][]byte{[]byte(secret)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.verify(t.Context(), &incoming{headers: p.h, body: p.body, now: r.clock.now()})
			return err == nil
		}
		recvPush := func() pushed {
			t.Helper()
			select {
			case p := <-reqs:
				return p
			case <-time.After(15 * time.Second):
				t.Fatal("no push within 15s")
				return pushed{}
			}
		}
		r.ingest(t)
		p := recvPush()
		if n := len(strings.Fields(p.h.Get("Webhook-Signature"))); n != 2 || !verifies(p, a) || !verifies(p, b) || verifies(p, c) {
			t.Fatalf("during rotation: %d signatures; a %v b %v c %v", n, verifies(p, a), verifies(p, b), verifies(p, c))
		}
		rotated, err = rotate(c, durationpb.New(0))
		if err != nil || rotated.GetPush().GetPreviousSecretExpireTime() != nil {
			t.Fatalf("rotation with ttl 0: %v %v", rotated.GetPush(), err)
		}
		r.ingest(t)
		// A push is at least once: under load the first push can outlast its 1 s timeout and come again,
		// signed as at its retry. Only the second event's push is under test here.
		first := p.h.Get("Webhook-Id")
		for p = recvPush(); p.h.Get("Webhook-Id") == first; p = recvPush() {
		}
		if n := len(strings.Fields(p.h.Get("Webhook-Signature"))); n != 1 || !verifies(p, c) || verifies(p, b) {
			t.Fatalf("after dropping the previous secret: %d signatures; b %v c %v", n, verifies(p, b), verifies(p, c))
		}

		pull, err := r.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "pull"})
		if err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			req  *webhookv1.RotateSigningSecretRequest
			code codes.Code
		}{
			"pull":    {&webhookv1.RotateSigningSecretRequest{Id: pull.GetSubscription().GetId(), SigningSecret: a}, codes.FailedPrecondition},
			"unknown": {&webhookv1.RotateSigningSecretRequest{Id: "0190b6a0-0000-7000-8000-0000000000ff", SigningSecret: a}, codes.NotFound},
			"bad id":  {&webhookv1.RotateSigningSecretRequest{Id: "nope", SigningSecret: a}, codes.InvalidArgument},
			"secret":  {&webhookv1.RotateSigningSecretRequest{Id: sub.GetId(), SigningSecret: "whsec_short"}, codes.InvalidArgument},
			"empty":   {&webhookv1.RotateSigningSecretRequest{Id: sub.GetId()}, codes.InvalidArgument},
			"ttl":     {&webhookv1.RotateSigningSecretRequest{Id: sub.GetId(), SigningSecret: a, PreviousSecretTtl: durationpb.New(31 * 24 * time.Hour)}, codes.InvalidArgument},
			"neg ttl": {&webhookv1.RotateSigningSecretRequest{Id: sub.GetId(), SigningSecret: a, PreviousSecretTtl: durationpb.New(-time.Second)}, codes.InvalidArgument},
		} {
			if _, err := r.client.RotateSigningSecret(t.Context(), tc.req); status.Code(err) != tc.code {
				t.Errorf("%s: %v, want %v", name, err, tc.code)
			}
		}
	})
}

// TestPushBatchTimeout: with one worker, a request that hangs does not hold back the rest of its batch
// nor the next deliveries: after WEBHOOK_BATCH_TIMEOUT the answers that came are recorded and the worker
// goes on with the room left. At shutdown the worker waits for the hung request, which is recorded when
// it ends.
func TestPushBatchTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_NUM_WORKERS", "1", "WEBHOOK_BATCH_TIMEOUT", "100ms")
		hung, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if calls.Add(1) == 1 {
				close(hung)
				<-release
			}
		}))
		defer ts.Close()
		defer func() {
			select {
			case <-release:
			default:
				close(release)
			}
		}()
		sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, 20*time.Second)
		count := func(st store.DeliveryStatus) int {
			ds, err := r.ds.DeliveryList(t.Context(), store.DeliveryListParams{SubscriptionID: sub.GetId(), Status: st, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			return len(ds)
		}
		r.ingest(t)
		select {
		case <-hung:
		case <-time.After(15 * time.Second):
			t.Fatal("no push within 15s")
		}
		for range 6 {
			r.ingest(t)
		}
		testutil.Eventually(t, 15*time.Second, "6 deliveries delivered beside the hung one", func() bool { return count(store.DeliveryDelivered) == 6 })
		if n := count(store.DeliveryLeased); n != 1 {
			t.Fatalf("%d leased, want the hung one", n)
		}
		r.stop()
		select {
		case <-r.stopped:
			t.Fatal("the worker stopped before its request in flight ended")
		default:
		}
		close(release)
		select {
		case <-r.stopped:
		case <-time.After(15 * time.Second):
			t.Fatal("the worker did not stop after its last request ended")
		}
		if n := count(store.DeliveryDelivered); n != 7 {
			t.Fatalf("%d delivered after stop, want 7 (the hung request recorded)", n)
		}
	})
}

// TestPushWokenAtOnce: with a poll interval of a minute, an event stored on the replica is pushed at
// once (Ingest wakes the workers); resuming a push subscription wakes them too (its deliveries waited).
func TestPushWokenAtOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_RECEIVE_POLL_INTERVAL", "1m")
		reqs := make(chan struct{}, 10)
		ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reqs <- struct{}{} }))
		defer ts.Close()
		sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, time.Second)
		r.ingest(t)
		select {
		case <-reqs:
		case <-time.After(10 * time.Second):
			t.Fatal("no push within 10s of the ingest (the poll interval is a minute)")
		}
		if _, err := r.client.PauseSubscription(t.Context(), &webhookv1.PauseSubscriptionRequest{Id: sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		woken := r.srv.consume().wake.wait()
		if _, err := r.client.ResumeSubscription(t.Context(), &webhookv1.ResumeSubscriptionRequest{Id: sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-woken:
		default:
			t.Fatal("resuming a push subscription did not wake the push workers")
		}
	})
}

// TestPushSecretThatDoesNotOpen: a push subscription whose secret was sealed under a key the service does
// not hold is skipped, logged once without the secret, and its deliveries wait untouched; the others are
// delivered.
func TestPushSecretThatDoesNotOpen(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		logs := &testutil.LogBuffer{}
		r := newPushRigWith(t, d, []Option{WithLogger(slog.New(slog.NewTextHandler(logs, nil)))})
		reqs := make(chan struct{}, 10)
		ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reqs <- struct{}{} }))
		defer ts.Close()
		now := r.clock.now()
		secret := newSigningSecret(t, 32)
		sub := &store.Subscription{ID: "0190b6a0-0000-7000-8000-0000000000ac", Name: "foreign", State: store.SubscriptionActive,
			Retry: store.RetryPolicy{MaxRetries: 3, BackoffBase: time.Second, BackoffCap: time.Minute}, LeaseDuration: 30 * time.Second,
			CreateTime: now, UpdateTime: now, Mode: store.SubscriptionPush}
		sealed, err := testPushRing(t).Seal([]byte(secret), pushSecretAAD(sub.ID)) // another key
		if err != nil {
			t.Fatal(err)
		}
		sub.Push = &store.PushConfig{Endpoint: ts.URL, AllowPrivateNetwork: true, Timeout: 5 * time.Second, Secret: sealed}
		if err := r.ds.SubscriptionCreate(t.Context(), sub); err != nil {
			t.Fatal(err)
		}
		good := r.createPush(t, "good", ts.URL, newSigningSecret(t, 32), true, time.Second)
		r.ingest(t)
		select {
		case <-reqs:
		case <-time.After(15 * time.Second):
			t.Fatal("the good subscription got no push within 15s")
		}
		r.waitAttempts(t, good.GetId(), 1)
		testutil.Eventually(t, 10*time.Second, "the unopenable secret logged", func() bool {
			return strings.Contains(logs.String(), "signing secret cannot be opened")
		})
		del, as := r.only(t, sub.ID)
		if del.Status != store.DeliveryPending || len(as) != 0 || del.AttemptCount != 0 {
			t.Fatalf("foreign subscription's delivery: %s, %d attempts", statusName(del.Status), len(as))
		}
		if n := strings.Count(logs.String(), "signing secret cannot be opened"); n != 1 {
			t.Errorf("logged %d times, want once", n)
		}
		if strings.Contains(logs.String(), strings.TrimPrefix(secret, "whsec_")) {
			t.Fatal("the log shows the secret")
		}
	})
}
