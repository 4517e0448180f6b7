package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sergas/core/client"
	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/testutil"
)

// The Go client (module github.com/sergas/core/client) against the real stack on loopback. The client
// module cannot import the services, so its end-to-end tests live here.

// retries records the retries a client made.
type retries struct {
	mu     sync.Mutex
	events []client.RetryEvent
}

func (r *retries) policy(p client.RetryPolicy) client.RetryPolicy {
	p.OnRetry = func(e client.RetryEvent) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }
	return p
}

func (r *retries) list() []client.RetryEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.RetryEvent(nil), r.events...)
}

// dialAgent dials addr in plaintext (the test stacks run with TLS_DISABLED, as behind a mesh sidecar)
// with key as bearer credential.
func dialAgent(t *testing.T, addr, key string, rec *retries) *client.Conn {
	t.Helper()
	c, err := client.Dial(client.Config{Address: addr, Plaintext: true, Bearer: key, AllowBearerOverPlaintext: true,
		Retry: rec.policy(client.RetryPolicy{InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// agentScopes are what an agent needs: its tokens, its audit trail, its webhook deliveries.
var agentScopes = []string{auth.ScopeTokenRead, auth.ScopeAuditWrite, auth.ScopeWebhookConsume}

// startWithAgent starts a stack with an admin key (every scope) and an agent key (agentScopes).
func startWithAgent(t *testing.T, env map[string]string) (*running, authtest.Key) {
	t.Helper()
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	agent := authtest.NewKey(t, "agent", agentScopes...)
	if env == nil {
		env = map[string]string{}
	}
	env["AUTH_API_KEYS"], env["TEST_ADMIN_KEY"] = authtest.JSON(admin, agent), admin.Key
	return start(t, env), agent
}

// cutProxy is a TCP proxy on loopback in front of a service that can lose the service's answers and
// break every connection, as a failing network or a restarting load balancer does.
type cutProxy struct {
	ln     net.Listener
	target string
	drop   atomic.Bool // answers from the service are read and thrown away
	mu     sync.Mutex
	conns  []net.Conn
	opened atomic.Int32
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.sever() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.opened.Add(1)
		go func() { io.Copy(s, c); s.Close(); c.Close() }()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !p.drop.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						err = werr
					}
				}
				if err != nil {
					s.Close()
					c.Close()
					return
				}
			}
		}()
	}
}

// sever closes every connection through the proxy.
func (p *cutProxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// countEvents counts the audit events with action, read directly from the service.
func countEvents(t *testing.T, r *running, action string) int {
	t.Helper()
	list, err := r.audit.ListEvents(t.Context(), &auditv1.ListEventsRequest{Action: action, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.GetEvents())
}

// loseAnswer makes call through p while the service's answers are lost: once the service has stored
// the events of action (want of them), the connection breaks, as when a reply is lost with its
// connection. It returns call's outcome.
func loseAnswer(t *testing.T, r *running, p *cutProxy, action string, want int, call func() error) error {
	t.Helper()
	if n := countEvents(t, r, action); n != 0 {
		t.Fatalf("precondition: %d events of %s before the call", n, action)
	}
	p.drop.Store(true)
	done := make(chan error, 1)
	go func() { done <- call() }()
	testutil.Eventually(t, 15*time.Second, "the service to store "+action, func() bool { return countEvents(t, r, action) == want })
	p.drop.Store(false)
	p.sever()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("the call did not return after its connection broke")
		return nil
	}
}

func TestGoClientAgainstStack(t *testing.T) {
	r, agent := startWithAgent(t, nil)
	ctx := t.Context()

	t.Run("AccessToken", func(t *testing.T) {
		_, err := r.token.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "org-1",
			AccessToken: "1000.at.agent", ExpiresIn: durationpb.New(time.Hour), ApiDomain: "https://www.zohoapis.eu"})
		if err != nil {
			t.Fatal(err)
		}
		c := dialAgent(t, r.addrs.Token, agent.Key, &retries{})
		tok, err := c.AccessToken(ctx, "zoho", "org-1")
		if err != nil || tok.GetAccessToken() != "1000.at.agent" || tok.GetApiDomain() != "https://www.zohoapis.eu" {
			t.Fatalf("access token: %v %v", tok, err)
		}
	})

	t.Run("WrongScopeNotRetried", func(t *testing.T) {
		var rec retries
		c := dialAgent(t, r.addrs.Token, agent.Key, &rec)
		// Refusals are answers, not transient failures, even on calls the client may retry (reads).
		stranger := authtest.NewKey(t, "stranger") // unknown to the stack
		for _, call := range []struct {
			name string
			do   func() error
			code codes.Code
		}{
			{"admin call with the agent key", func() error {
				_, err := c.Token().RefreshConnection(ctx, &tokenv1.RefreshConnectionRequest{Provider: "zoho", ConnectionId: "org-1"})
				return err
			}, codes.PermissionDenied},
			{"read with an unknown key", func() error {
				_, err := dialAgent(t, r.addrs.Token, stranger.Key, &rec).AccessToken(ctx, "zoho", "org-1")
				return err
			}, codes.Unauthenticated},
			{"read of a scope the key lacks", func() error {
				_, err := dialAgent(t, r.addrs.Audit, agent.Key, &rec).Audit().ListEvents(ctx, &auditv1.ListEventsRequest{})
				return err
			}, codes.PermissionDenied},
		} {
			if err := call.do(); status.Code(err) != call.code {
				t.Errorf("%s: %v, want %v", call.name, err, call.code)
			}
		}
		if ev := rec.list(); len(ev) != 0 {
			t.Errorf("refusals were retried: %+v", ev)
		}
	})

	t.Run("AuditRecordedOnceWhenAnswerLost", func(t *testing.T) {
		var rec retries
		p := newCutProxy(t, r.addrs.Audit)
		c := dialAgent(t, p.addr(), agent.Key, &rec)
		if _, err := c.Audit().GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{}); err != nil { // connect first
			t.Fatal(err)
		}
		var got *auditv1.RecordEventResponse
		err := loseAnswer(t, r, p, "agent.lost-answer", 1, func() (err error) {
			got, err = c.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "agent-7", Action: "agent.lost-answer",
				Resource: "Deals/42", Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
			return err
		})
		// The second attempt carried the first one's generated key: the service answered with the event
		// the lost attempt stored, and stored no other.
		if err != nil || !got.GetDuplicate() || got.GetEvent().GetIdempotencyKey() == "" {
			t.Fatalf("record: %v %v", got, err)
		}
		if n := countEvents(t, r, "agent.lost-answer"); n != 1 {
			t.Fatalf("%d events stored, want 1", n)
		}
		if ev := rec.list(); len(ev) == 0 || status.Code(ev[0].Err) != codes.Unavailable || ev[0].Method != auditv1.AuditService_RecordEvent_FullMethodName {
			t.Fatalf("retries %+v", ev)
		}

		// A batch: every event keyed by the helper, all stored once.
		evs := make([]*auditv1.RecordEventRequest, 3)
		for i := range evs {
			evs[i] = &auditv1.RecordEventRequest{Actor: "agent-7", Action: "agent.lost-batch", Resource: fmt.Sprintf("Deals/%d", i), Outcome: auditv1.Outcome_OUTCOME_SUCCESS}
		}
		var batch *auditv1.RecordEventsResponse
		err = loseAnswer(t, r, p, "agent.lost-batch", 3, func() (err error) {
			batch, err = c.RecordEvents(ctx, evs)
			return err
		})
		if err != nil || len(batch.GetResults()) != 3 {
			t.Fatalf("batch: %v %v", batch, err)
		}
		for i, res := range batch.GetResults() {
			if !res.GetDuplicate() || res.GetEvent().GetResource() != fmt.Sprintf("Deals/%d", i) {
				t.Errorf("batch result %d: %v", i, res)
			}
		}
		if n := countEvents(t, r, "agent.lost-batch"); n != 3 {
			t.Fatalf("%d batch events stored, want 3", n)
		}

		// Without a key (the generated client, not the helper) the write is not repeated: the caller
		// gets UNAVAILABLE although the event was stored, and must not be told otherwise.
		before := len(rec.list())
		err = loseAnswer(t, r, p, "agent.no-key", 1, func() error {
			_, err := c.Audit().RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "agent-7", Action: "agent.no-key", Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
			return err
		})
		if status.Code(err) != codes.Unavailable || len(rec.list()) != before {
			t.Fatalf("a write without a key: %v, retries %+v", err, rec.list()[before:])
		}
	})

	t.Run("Consume", func(t *testing.T) { testGoClientConsume(t, r, agent) })

	t.Run("ConsumeRefusedEnds", func(t *testing.T) {
		// Refusals end the loop with the service's answer instead of reconnecting for ever.
		reader := authtest.NewKey(t, "reader", auth.ScopeTokenRead) // lacks webhook:consume, and unknown
		sub, err := r.webhook.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "refused"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name, key, sub string
			code           codes.Code
		}{
			{"no such subscription", agent.Key, "01a21a28-9efc-7aa0-aa42-950625b9f6fc", codes.NotFound},
			{"not a subscription id", agent.Key, "nope", codes.InvalidArgument},
			{"unknown key", reader.Key, sub.GetSubscription().GetId(), codes.Unauthenticated},
		} {
			var reports atomic.Int32
			cons := &client.Consumer{Subscription: c.sub, OnError: func(error) { reports.Add(1) },
				Handler: func(context.Context, *webhookv1.LeasedDelivery) error { return nil }}
			done := make(chan error, 1)
			go func() { done <- cons.Run(ctx, dialAgent(t, r.addrs.Webhook, c.key, &retries{})) }()
			select {
			case err := <-done:
				if status.Code(err) != c.code || reports.Load() != 0 {
					t.Errorf("%s: Run returned %v after %d reconnections, want %v at once", c.name, err, reports.Load(), c.code)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("%s: Run still going after 15 s", c.name)
			}
		}
	})
}

// testGoClientConsume runs the consume loop through a proxy: deliveries are acked, a failing one is
// nacked and comes back, the loop reconnects when the connection breaks and ends on cancel.
func testGoClientConsume(t *testing.T, r *running, agent authtest.Key) {
	ctx := t.Context()
	sub, err := r.webhook.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "go-agents",
		Filter:      &webhookv1.EventFilter{Sources: []string{"zoho"}},
		RetryPolicy: &webhookv1.RetryPolicy{BackoffBase: durationpb.New(10 * time.Millisecond), BackoffCap: durationpb.New(10 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	ingest := func(marker string) {
		t.Helper()
		payload := fmt.Sprintf(`{"module":"Deals","ids":["%s"],"operation":"update","server_time":1700000000000}`, marker)
		if code, body := r.do(t, "POST", "/webhooks/zoho", payload, "Content-Type", "application/json"); code != 202 {
			t.Fatalf("ingest %s: %d %v", marker, code, body)
		}
	}
	p := newCutProxy(t, r.addrs.Webhook)
	c := dialAgent(t, p.addr(), agent.Key, &retries{})

	type outcome struct {
		marker, delivery string
		failed           bool
	}
	seen := make(chan outcome, 100)
	var active, peak atomic.Int32
	var failedOnce sync.Map
	handler := func(hctx context.Context, d *webhookv1.LeasedDelivery) error {
		n := active.Add(1)
		defer active.Add(-1)
		for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
		}
		var body struct{ IDs []string }
		if err := json.Unmarshal(d.GetEvent().GetPayload(), &body); err != nil || len(body.IDs) != 1 {
			return fmt.Errorf("payload %q", d.GetEvent().GetPayload())
		}
		marker := body.IDs[0]
		o := outcome{marker: marker, delivery: d.GetDelivery().GetId()}
		if _, again := failedOnce.LoadOrStore(marker, true); !again && strings.HasPrefix(marker, "fail") {
			o.failed = true
			seen <- o
			return errors.New("CRM API 503")
		}
		seen <- o
		if strings.HasPrefix(marker, "hold") { // still working when the consumer stops
			<-hctx.Done()
			return hctx.Err()
		}
		return nil
	}
	var reconnects atomic.Int32
	cons := &client.Consumer{Subscription: sub.GetSubscription().GetId(), Name: "agent-7", MaxInFlight: 2, Handler: handler,
		OnError: func(err error) {
			if strings.Contains(err.Error(), "reconnecting") {
				reconnects.Add(1)
			}
		}}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx, c) }()

	for _, m := range []string{"ok-1", "fail-2", "ok-3"} {
		ingest(m)
	}
	next := func() outcome {
		t.Helper()
		select {
		case o := <-seen:
			return o
		case err := <-done:
			t.Fatalf("consumer ended: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("no delivery within 15 s")
		}
		return outcome{}
	}
	got := map[string][]bool{}
	var failDelivery string
	for range 4 { // three deliveries, one of them twice
		o := next()
		got[o.marker] = append(got[o.marker], o.failed)
		if o.marker == "fail-2" {
			failDelivery = o.delivery
		}
	}
	if len(got["ok-1"]) != 1 || len(got["ok-3"]) != 1 || fmt.Sprint(got["fail-2"]) != "[true false]" {
		t.Fatalf("handled %v", got)
	}
	var attempts []*webhookv1.Attempt
	testutil.Eventually(t, 15*time.Second, "the failed delivery to be acked on its second attempt", func() bool {
		d, err := r.webhook.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: failDelivery})
		if err != nil {
			t.Fatal(err)
		}
		attempts = d.GetDelivery().GetAttempts()
		return d.GetDelivery().GetStatus() == webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
	})
	if len(attempts) != 2 || attempts[0].GetOutcome() != "nacked" || attempts[0].GetError() != "CRM API 503" ||
		attempts[1].GetOutcome() != "acked" || attempts[0].GetConsumer() != "agent-7" {
		t.Fatalf("attempts %v", attempts)
	}

	// The connection breaks: the loop opens a new stream and goes on.
	opened := p.opened.Load()
	p.sever()
	testutil.Eventually(t, 15*time.Second, "a reconnection", func() bool { return reconnects.Load() > 0 && p.opened.Load() > opened })
	ingest("ok-4")
	if o := next(); o.marker != "ok-4" {
		t.Fatalf("after reconnecting: %v", o)
	}
	if peak.Load() > 2 {
		t.Errorf("%d handlers at once, MaxInFlight 2", peak.Load())
	}

	// Stopping with a handler in flight: its context ends, and what it returns still settles the
	// delivery (a nack, handing it back now rather than when the lease ends).
	ingest("hold-5")
	held := next()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not end after cancel")
	}
	d, err := r.webhook.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: held.delivery})
	if a := d.GetDelivery().GetAttempts(); err != nil || held.marker != "hold-5" || len(a) != 1 || a[0].GetOutcome() != "nacked" || a[0].GetError() != "context canceled" {
		t.Fatalf("delivery in flight at stop: %v %v", d, err)
	}
}

// A handler that runs longer than the lease keeps the delivery: the consumer extends the lease every
// half lease, so the delivery is neither handed out again nor its ack refused.
func TestGoClientConsumeKeepsLease(t *testing.T) {
	r, agent := startWithAgent(t, nil)
	ctx := t.Context()
	sub, err := r.webhook.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: "slow", LeaseDuration: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := r.do(t, "POST", "/webhooks/zoho", `{"slow":1}`, "Content-Type", "application/json"); code != 202 {
		t.Fatalf("ingest: %d %v", code, body)
	}
	c := dialAgent(t, r.addrs.Webhook, agent.Key, &retries{})
	var calls atomic.Int32
	handled := make(chan string, 10)
	var problems []string
	var mu sync.Mutex
	cons := &client.Consumer{Subscription: sub.GetSubscription().GetId(), OnError: func(err error) { mu.Lock(); problems = append(problems, err.Error()); mu.Unlock() },
		Handler: func(hctx context.Context, d *webhookv1.LeasedDelivery) error {
			calls.Add(1)
			first := d.GetDelivery().GetLeaseExpireTime().AsTime()
			// Hold it until the first lease is over and the service shows the lease extended past it.
			for {
				got, err := r.webhook.GetDelivery(hctx, &webhookv1.GetDeliveryRequest{Id: d.GetDelivery().GetId()})
				if err != nil {
					return err
				}
				if time.Now().After(first.Add(200*time.Millisecond)) && got.GetDelivery().GetLeaseExpireTime().AsTime().After(first) {
					break
				}
				select {
				case <-hctx.Done():
					return hctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
			}
			handled <- d.GetDelivery().GetId()
			return nil
		}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx, c) }()
	var id string
	select {
	case id = <-handled:
	case err := <-done:
		t.Fatalf("consumer ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("not handled within 15 s")
	}
	testutil.Eventually(t, 15*time.Second, "the delivery to be acked", func() bool {
		d, err := r.webhook.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: id})
		return err == nil && d.GetDelivery().GetStatus() == webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	d, _ := r.webhook.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: id})
	mu.Lock()
	defer mu.Unlock()
	if a := d.GetDelivery().GetAttempts(); len(a) != 1 || a[0].GetOutcome() != "acked" || calls.Load() != 1 || len(problems) != 0 {
		t.Fatalf("attempts %v, handler calls %d, problems %v", a, calls.Load(), problems)
	}
}

// RESOURCE_EXHAUSTED with the RetryInfo of the per-credential rate limit is waited out, then retried.
func TestGoClientHonoursRetryInfo(t *testing.T) {
	r, agent := startWithAgent(t, map[string]string{"RATE_LIMIT_READ_PER_SECOND": "1", "RATE_LIMIT_READ_BURST": "1"})
	ctx := t.Context()
	_, err := r.token.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "org-1",
		AccessToken: "1000.at.agent", ExpiresIn: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var rec retries
	c := dialAgent(t, r.addrs.Token, agent.Key, &rec)
	// One a second with bursts of one: of calls made back to back, all but the first of each second are
	// throttled. A loaded machine may space two calls by a second, hence a few calls, until one was.
	var ev []client.RetryEvent
	var elapsed time.Duration
	for i := 0; i < 10 && len(ev) == 0; i++ {
		start := time.Now()
		tok, err := c.AccessToken(ctx, "zoho", "org-1")
		elapsed = time.Since(start)
		if err != nil || tok.GetAccessToken() != "1000.at.agent" {
			t.Fatalf("call %d: %v %v", i, tok, err)
		}
		ev = rec.list()
	}
	if len(ev) == 0 {
		t.Fatal("precondition: no call was throttled")
	}
	delay, ok := client.RetryInfo(ev[0].Err)
	if status.Code(ev[0].Err) != codes.ResourceExhausted || !ok || delay <= 0 || ev[0].Wait < delay || elapsed < ev[0].Wait {
		t.Fatalf("retry %+v (RetryInfo %v), elapsed %v", ev[0], delay, elapsed)
	}

	// Without retries the service's own answer shows: RESOURCE_EXHAUSTED carrying the RetryInfo.
	once, err := client.Dial(client.Config{Address: r.addrs.Token, Plaintext: true, Bearer: agent.Key, AllowBearerOverPlaintext: true,
		Retry: client.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer once.Close()
	_, err = once.AccessToken(ctx, "zoho", "org-1")
	if d, ok := client.RetryInfo(err); status.Code(err) != codes.ResourceExhausted || !ok || d <= 0 {
		t.Fatalf("unretried throttled call: %v", err)
	}
}

// TLS against the test CA, with and without a client certificate (mTLS), with a bearer key or the
// certificate's own identity.
func TestGoClientTLS(t *testing.T) {
	ca := newCA(t)
	serverCert, serverKey := ca.issue(t, "server", "sergas-services", 10)
	gwCert, gwKey := ca.issue(t, "gateway", "sergas-gateway", 11)
	agentCert, agentKey := ca.issue(t, "agent", "agent-7", 12, "spiffe://sergas.test/agent")
	tlsEnv := func(mutual bool) map[string]string {
		env := map[string]string{"TLS_DISABLED": "", "TLS_CERT_FILE": serverCert, "TLS_KEY_FILE": serverKey,
			"GRPC_CLIENT_CA_FILE": ca.path("ca.pem"), "GRPC_CLIENT_SERVER_NAME": "localhost"}
		if mutual {
			env["TLS_CLIENT_CA_FILE"] = ca.path("ca.pem")
			env["GRPC_CLIENT_CERT_FILE"], env["GRPC_CLIENT_KEY_FILE"] = gwCert, gwKey
			env["AUTH_TLS_IDENTITIES"] = `{"spiffe://sergas.test/agent": ["token:read"]}`
		}
		return env
	}
	for _, mutual := range []bool{false, true} {
		t.Run(map[bool]string{false: "TLS", true: "mTLS"}[mutual], func(t *testing.T) {
			r, agent := startWithAgent(t, tlsEnv(mutual))
			ctx := t.Context()
			dial := func(cfg client.Config) error {
				cfg.Address, cfg.ServerName, cfg.Retry = r.addrs.Token, "localhost", client.RetryPolicy{MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}
				c, err := client.Dial(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_, err = c.Token().ListConnections(ctx, &tokenv1.ListConnectionsRequest{})
				return err
			}
			var clientCert, clientKey string
			if mutual {
				clientCert, clientKey = agentCert, agentKey
			}
			if err := dial(client.Config{CAFile: ca.path("ca.pem"), CertFile: clientCert, KeyFile: clientKey, Bearer: agent.Key}); err != nil {
				t.Errorf("bearer over TLS with the CA: %v", err)
			}
			// The system roots do not hold the test CA.
			if err := dial(client.Config{Bearer: agent.Key, CertFile: clientCert, KeyFile: clientKey}); status.Code(err) != codes.Unavailable {
				t.Errorf("system roots: %v, want UNAVAILABLE", err)
			}
			// Plaintext against a TLS listener fails; the key was never offered in the clear by accident:
			// the caller had to allow it.
			if err := dial(client.Config{Plaintext: true, Bearer: agent.Key, AllowBearerOverPlaintext: true}); status.Code(err) != codes.Unavailable {
				t.Errorf("plaintext: %v, want UNAVAILABLE", err)
			}
			if !mutual {
				return
			}
			if err := dial(client.Config{CAFile: ca.path("ca.pem"), Bearer: agent.Key}); status.Code(err) != codes.Unavailable {
				t.Errorf("no client certificate against mTLS: %v, want UNAVAILABLE", err)
			}
			// The certificate's SPIFFE identity alone, mapped to token:read.
			if err := dial(client.Config{CAFile: ca.path("ca.pem"), CertFile: agentCert, KeyFile: agentKey}); err != nil {
				t.Errorf("certificate identity: %v", err)
			}
			if err := dial(client.Config{CAFile: ca.path("ca.pem"), CertFile: agentCert, KeyFile: agentKey,
				BearerFunc: func(context.Context) (string, error) { return agent.Key, nil }}); err != nil {
				t.Errorf("bearer from a function over mTLS: %v", err)
			}

			// A certificate renewed on disk is presented at the next handshake, without a new Dial: first
			// an identity the service does not map, then, replaced in place, the agent's.
			rotCert, rotKey := ca.issue(t, "rotating", "agent-8", 13, "spiffe://sergas.test/unmapped")
			p := newCutProxy(t, r.addrs.Token)
			c, err := client.Dial(client.Config{Address: p.addr(), ServerName: "localhost", CAFile: ca.path("ca.pem"), CertFile: rotCert, KeyFile: rotKey})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Token().ListConnections(ctx, &tokenv1.ListConnectionsRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("precondition: an unmapped certificate: %v, want UNAUTHENTICATED", err)
			}
			ca.issue(t, "rotating", "agent-7", 14, "spiffe://sergas.test/agent")
			p.sever() // the next call handshakes again
			if _, err := c.Token().ListConnections(ctx, &tokenv1.ListConnectionsRequest{}); err != nil {
				t.Errorf("after the certificate was renewed on disk: %v", err)
			}
		})
	}
}
