package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// lowest and highest stand in for the random source at its two ends.
func lowest(int64) int64    { return 0 }
func highest(n int64) int64 { return n - 1 }

func TestBackoffGrowsWithinJitterAndCap(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	steps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, step := range steps {
		step *= time.Millisecond
		lo, hi := p.backoff(i+1, lowest), p.backoff(i+1, highest)
		// Jitter spreads each wait over the upper half of its step: at least half, at most the step.
		if lo != step/2 || hi != step {
			t.Errorf("retry %d: waits %v..%v, want %v..%v", i+1, lo, hi, step/2, step)
		}
	}
	// A huge attempt number neither overflows nor exceeds the cap.
	if d := p.backoff(500, highest); d != time.Second {
		t.Errorf("retry 500: %v", d)
	}
}

func withRetryInfo(code codes.Code, d time.Duration) error {
	st, _ := status.New(code, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
	return st.Err()
}

func TestRetryDelayRetriesOnlyWhatIsSafe(t *testing.T) {
	p := DefaultRetry
	cases := []struct {
		name     string
		err      error
		ok       bool
		min, max time.Duration
	}{
		{"unavailable", status.Error(codes.Unavailable, "down"), true, 50 * time.Millisecond, 100 * time.Millisecond},
		{"unavailable with a longer RetryInfo", withRetryInfo(codes.Unavailable, 2*time.Second), true, 2 * time.Second, 2 * time.Second},
		{"rate limited with RetryInfo", withRetryInfo(codes.ResourceExhausted, time.Second), true, 1001 * time.Millisecond, 1101 * time.Millisecond},
		{"resource exhausted without RetryInfo (message too large)", status.Error(codes.ResourceExhausted, "too large"), false, 0, 0},
		{"permission denied", status.Error(codes.PermissionDenied, "method requires scope token:admin"), false, 0, 0},
		{"unauthenticated", status.Error(codes.Unauthenticated, "invalid credentials"), false, 0, 0},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad"), false, 0, 0},
		{"already exists", status.Error(codes.AlreadyExists, "events[3]"), false, 0, 0},
		{"deadline exceeded", status.Error(codes.DeadlineExceeded, "late"), false, 0, 0},
		{"not a status", errors.New("plain"), false, 0, 0},
	}
	for _, c := range cases {
		for _, rnd := range []func(int64) int64{lowest, highest} {
			wait, ok := p.retryDelay(c.err, 1, rnd)
			if ok != c.ok || (ok && (wait < c.min || wait > c.max)) {
				t.Errorf("%s: wait %v ok %v, want ok %v within %v..%v", c.name, wait, ok, c.ok, c.min, c.max)
			}
		}
	}
}

func TestRetryableNeedsSafeMethodOrIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	keyed := &auditv1.RecordEventRequest{IdempotencyKey: "k"}
	cases := []struct {
		name   string
		ctx    context.Context
		method string
		req    any
		want   bool
	}{
		{"GetAccessToken", ctx, tokenv1.TokenService_GetAccessToken_FullMethodName, &tokenv1.GetAccessTokenRequest{}, true},
		{"Ack", ctx, webhookv1.WebhookService_Ack_FullMethodName, &webhookv1.AckRequest{}, true},
		{"RecordEvent with key", ctx, auditv1.AuditService_RecordEvent_FullMethodName, keyed, true},
		{"RecordEvent without key", ctx, auditv1.AuditService_RecordEvent_FullMethodName, &auditv1.RecordEventRequest{}, false},
		{"RecordEvents all keyed", ctx, auditv1.AuditService_RecordEvents_FullMethodName, &auditv1.RecordEventsRequest{Events: []*auditv1.RecordEventRequest{keyed, keyed}}, true},
		{"RecordEvents one without key", ctx, auditv1.AuditService_RecordEvents_FullMethodName, &auditv1.RecordEventsRequest{Events: []*auditv1.RecordEventRequest{keyed, {}}}, false},
		{"RecordEvents empty", ctx, auditv1.AuditService_RecordEvents_FullMethodName, &auditv1.RecordEventsRequest{}, false},
		{"CreateConnection", ctx, tokenv1.TokenService_CreateConnection_FullMethodName, &tokenv1.CreateConnectionRequest{}, false},
		{"RefreshConnection", ctx, tokenv1.TokenService_RefreshConnection_FullMethodName, &tokenv1.RefreshConnectionRequest{}, false},
		{"Poll", ctx, webhookv1.WebhookService_Poll_FullMethodName, &webhookv1.PollRequest{}, false},
		{"CreateConnection vouched for", Idempotent(ctx), tokenv1.TokenService_CreateConnection_FullMethodName, &tokenv1.CreateConnectionRequest{}, true},
	}
	for _, c := range cases {
		if got := Retryable(c.ctx, c.method, c.req); got != c.want {
			t.Errorf("%s: Retryable %v, want %v", c.name, got, c.want)
		}
	}
}

// do stops at the first error it does not retry, at MaxAttempts, and before a wait that would pass the
// context's deadline or MaxElapsed, returning the last error each time.
func TestDoBounds(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "down")
	run := func(p RetryPolicy, ctx context.Context, errs ...error) (calls int, err error) {
		err = p.withDefaults().do(ctx, "/m", func(context.Context) error {
			calls++
			if calls <= len(errs) {
				return errs[calls-1]
			}
			return nil
		})
		return calls, err
	}
	fast := RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	if n, err := run(fast, context.Background(), unavailable, unavailable); n != 3 || err != nil {
		t.Errorf("two UNAVAILABLE then success: %d calls, %v", n, err)
	}
	if n, err := run(fast, context.Background(), status.Error(codes.PermissionDenied, "no")); n != 1 || status.Code(err) != codes.PermissionDenied {
		t.Errorf("PERMISSION_DENIED: %d calls, %v", n, err)
	}
	three := fast
	three.MaxAttempts = 3
	if n, err := run(three, context.Background(), unavailable, unavailable, unavailable, unavailable); n != 3 || status.Code(err) != codes.Unavailable {
		t.Errorf("MaxAttempts 3: %d calls, %v", n, err)
	}
	// A RetryInfo of an hour: neither the deadline nor MaxElapsed allows the wait, so no second call.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n, err := run(fast, ctx, withRetryInfo(codes.ResourceExhausted, time.Hour)); n != 1 || status.Code(err) != codes.ResourceExhausted {
		t.Errorf("RetryInfo past the deadline: %d calls, %v", n, err)
	}
	if n, err := run(RetryPolicy{MaxElapsed: time.Second}, context.Background(), withRetryInfo(codes.ResourceExhausted, time.Minute)); n != 1 || status.Code(err) != codes.ResourceExhausted {
		t.Errorf("RetryInfo past MaxElapsed: %d calls, %v", n, err)
	}
	// Cancelled while waiting: the wait ends at once with CANCELED.
	ctx, cancel = context.WithCancel(context.Background())
	var events []RetryEvent
	p := RetryPolicy{OnRetry: func(e RetryEvent) { events = append(events, e); cancel() }}
	if n, err := run(p, ctx, withRetryInfo(codes.ResourceExhausted, 20*time.Second)); n != 1 || status.Code(err) != codes.Canceled {
		t.Errorf("cancelled during the wait: %d calls, %v", n, err)
	}
	if len(events) != 1 || events[0].Attempt != 1 || events[0].Wait < 20*time.Second || events[0].Method != "/m" {
		t.Errorf("OnRetry saw %+v", events)
	}
}

func TestNackErrorFitsTheService(t *testing.T) {
	long := strings.Repeat("é", 600) // 1,200 bytes
	got := nackError(errors.New(long))
	if len(got) > 1000 || !utf8.ValidString(got) {
		t.Errorf("cut to %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := nackError(errors.New("a\x00b\xffc")); got != "a?b?c" {
		t.Errorf("NUL and invalid UTF-8: %q", got)
	}
}

func TestDialRefusesUnsafeCombinations(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no address", Config{}},
		{"bearer over plaintext", Config{Address: "127.0.0.1:1", Plaintext: true, Bearer: "sgk_x.y"}},
		{"bearer func over plaintext", Config{Address: "127.0.0.1:1", Plaintext: true, BearerFunc: func(context.Context) (string, error) { return "t", nil }}},
		{"plaintext with a CA", Config{Address: "127.0.0.1:1", Plaintext: true, CAFile: "ca.pem"}},
		{"certificate without key", Config{Address: "127.0.0.1:1", CertFile: "c.pem"}},
		{"missing CA file", Config{Address: "127.0.0.1:1", CAFile: t.TempDir() + "/none.pem"}},
		{"CA without a certificate", Config{Address: "127.0.0.1:1", CAPEM: []byte("not pem")}},
		{"missing client certificate", Config{Address: "127.0.0.1:1", CertFile: t.TempDir() + "/c.pem", KeyFile: t.TempDir() + "/k.pem"}},
	}
	for _, c := range cases {
		if conn, err := Dial(c.cfg); err == nil {
			conn.Close()
			t.Errorf("%s: Dial succeeded", c.name)
		}
	}
	conn, err := Dial(Config{Address: "127.0.0.1:1", Plaintext: true, Bearer: "sgk_x.y", AllowBearerOverPlaintext: true})
	if err != nil {
		t.Fatalf("bearer over plaintext, allowed: %v", err)
	}
	conn.Close()
}

func TestRecordEventKeepsTheCallersRequest(t *testing.T) {
	ev := &auditv1.RecordEventRequest{Actor: "a"}
	got := withKey(ev)
	if ev.GetIdempotencyKey() != "" || len(got.GetIdempotencyKey()) != 32 || got.GetActor() != "a" {
		t.Errorf("caller's %q, sent %q", ev.GetIdempotencyKey(), got.GetIdempotencyKey())
	}
	if other := withKey(ev); other.GetIdempotencyKey() == got.GetIdempotencyKey() {
		t.Error("two calls got the same key")
	}
	keyed := &auditv1.RecordEventRequest{IdempotencyKey: "mine"}
	if withKey(keyed) != keyed {
		t.Error("a caller's key was replaced")
	}
}
