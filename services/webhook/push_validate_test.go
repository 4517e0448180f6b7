package webhook

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// TestCreatePushSubscriptionRefusals checks every rule of a push configuration at the RPC: each bad
// request is INVALID_ARGUMENT with a message naming the field and never the secret.
func TestCreatePushSubscriptionRefusals(t *testing.T) {
	h := startServiceOn(t, newStore(t, db.SQLite), map[string]string{}, WithKeyring(testPushRing(t)))
	secret := newSigningSecret(t, 32)
	push := func(endpoint string, mod func(*webhookv1.PushConfig)) *webhookv1.CreateSubscriptionRequest {
		p := &webhookv1.PushConfig{Endpoint: endpoint, SigningSecret: secret}
		if mod != nil {
			mod(p)
		}
		return &webhookv1.CreateSubscriptionRequest{Name: "hook", Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH, Push: p}
	}
	allow := func(p *webhookv1.PushConfig) { p.AllowPrivateNetwork = true }
	for name, tc := range map[string]struct {
		req  *webhookv1.CreateSubscriptionRequest
		want string
	}{
		"push config on pull": {&webhookv1.CreateSubscriptionRequest{Name: "hook", Push: &webhookv1.PushConfig{Endpoint: "https://example.com"}}, "pull subscription"},
		"push config on explicit pull": {&webhookv1.CreateSubscriptionRequest{Name: "hook", Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PULL,
			Push: &webhookv1.PushConfig{}}, "pull subscription"},
		"push without config": {&webhookv1.CreateSubscriptionRequest{Name: "hook", Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH}, "push is required"},
		"unknown mode":        {&webhookv1.CreateSubscriptionRequest{Name: "hook", Mode: 7}, "mode"},
		"no endpoint":         {push("", nil), "push.endpoint is required"},
		"relative":            {push("/hooks", nil), "absolute https"},
		"no host":             {push("https:///x", nil), "absolute https"},
		"ftp":                 {push("ftp://example.com/x", nil), "absolute https"},
		"http public":         {push("http://example.com/x", nil), "http is accepted only with allow_private_network"},
		"userinfo":            {push("https://user:pw@example.com/x", nil), "user information"},
		"fragment":            {push("https://example.com/x#frag", nil), "fragment"},
		"space":               {push("https://example.com/a b", nil), "spaces"},
		"too long":            {push("https://example.com/"+strings.Repeat("a", 2048), nil), "at most 2048 bytes"},
		"bad port":            {push("https://example.com:99999/x", nil), "port"},
		"loopback literal":    {push("https://127.0.0.1/x", nil), "loopback address, which only a subscription with allow_private_network"},
		"localhost":           {push("https://localhost:8443/x", nil), "loopback"},
		"metadata":            {push("https://169.254.169.254/latest", nil), "cloud metadata"},
		"mapped private":      {push("https://[::ffff:10.0.0.1]/x", nil), "private"},
		// A trailing dot names the same host; short, hex, octal and integer IPv4 forms are refused even
		// with allow_private_network (the C resolver reads 127.1 as 127.0.0.1, Go's asks DNS).
		"localhost dot":     {push("https://localhost./x", nil), "loopback"},
		"sub localhost dot": {push("https://a.LOCALHOST./x", nil), "loopback"},
		"metadata dot":      {push("https://169.254.169.254./latest", nil), "cloud metadata"},
		"short ipv4":        {push("https://127.1/x", nil), "dotted-decimal"},
		"hex ipv4":          {push("https://0x7f000001/x", nil), "dotted-decimal"},
		"integer ipv4":      {push("https://2130706433/x", nil), "dotted-decimal"},
		"octal ipv4":        {push("https://0177.0.0.1/x", nil), "dotted-decimal"},
		"hex part ipv4":     {push("https://10.0.0.0x1/x", allow), "dotted-decimal"},
		"integer ipv4 dot":  {push("http://2130706433./x", allow), "dotted-decimal"},
		"timeout short":     {push("https://example.com", func(p *webhookv1.PushConfig) { p.Timeout = durationpb.New(500 * time.Millisecond) }), "push.timeout"},
		"timeout long":      {push("https://example.com", func(p *webhookv1.PushConfig) { p.Timeout = durationpb.New(61 * time.Second) }), "push.timeout"},
		"timeout vs lease": {func() *webhookv1.CreateSubscriptionRequest {
			r := push("https://example.com", func(p *webhookv1.PushConfig) { p.Timeout = durationpb.New(5 * time.Second) })
			r.LeaseDuration = durationpb.New(5 * time.Second)
			return r
		}(), "shorter than lease_duration"},
		"default timeout vs lease": {func() *webhookv1.CreateSubscriptionRequest {
			r := push("https://example.com", nil)
			r.LeaseDuration = durationpb.New(10 * time.Second)
			return r
		}(), "shorter than lease_duration"},
		"no secret":                    {push("https://example.com", func(p *webhookv1.PushConfig) { p.SigningSecret = "" }), "signing_secret is required"},
		"secret prefix":                {push("https://example.com", func(p *webhookv1.PushConfig) { p.SigningSecret = strings.TrimPrefix(secret, "whsec_") }), "whsec_"},
		"secret base64":                {push("https://example.com", func(p *webhookv1.PushConfig) { p.SigningSecret = "whsec_***notbase64***" }), "base64"},
		"secret short":                 {push("https://example.com", func(p *webhookv1.PushConfig) { p.SigningSecret = newSigningSecret(t, 23) }), "24 to 64 bytes"},
		"secret long":                  {push("https://example.com", func(p *webhookv1.PushConfig) { p.SigningSecret = newSigningSecret(t, 65) }), "24 to 64 bytes"},
		"output only time":             {push("https://example.com", func(p *webhookv1.PushConfig) { p.PreviousSecretExpireTime = timestamppb.Now() }), "output only"},
		"http private ok but userinfo": {push("http://u@10.0.0.1/x", allow), "user information"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.client.CreateSubscription(t.Context(), tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Fatalf("got %v, want INVALID_ARGUMENT containing %q", err, tc.want)
			}
			if strings.Contains(status.Convert(err).Message(), strings.TrimPrefix(secret, "whsec_")) {
				t.Fatal("the error repeats the secret")
			}
		})
	}
}

// TestCreatePushSubscriptionNeedsKeyring: without WEBHOOK_ENCRYPTION_KEYS a push subscription cannot be
// created (its secret could not be sealed); a pull one can.
func TestCreatePushSubscriptionNeedsKeyring(t *testing.T) {
	h := startServiceOn(t, newStore(t, db.SQLite), map[string]string{})
	_, err := h.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "hook", Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
		Push: &webhookv1.PushConfig{Endpoint: "https://example.com/hook", SigningSecret: newSigningSecret(t, 32)}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "WEBHOOK_ENCRYPTION_KEYS") {
		t.Fatalf("got %v, want FAILED_PRECONDITION naming WEBHOOK_ENCRYPTION_KEYS", err)
	}
	_, err = h.client.RotateSigningSecret(t.Context(), &webhookv1.RotateSigningSecretRequest{Id: "0190b6a0-0000-7000-8000-000000000001", SigningSecret: newSigningSecret(t, 32)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("rotate without keys: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := h.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "pull"}); err != nil {
		t.Fatalf("pull subscription: %v", err)
	}
}

// TestNewPushSubscriptionSealsTheSecret: the stored secret is sealed, bound to the subscription id (it
// does not open for another id), and the answer shows the configuration without any secret.
func TestNewPushSubscriptionSealsTheSecret(t *testing.T) {
	ring := testPushRing(t)
	h := startServiceOn(t, newStore(t, db.SQLite), map[string]string{}, WithKeyring(ring))
	secret := newSigningSecret(t, 32)
	sub, err := h.srv.newSubscription(&webhookv1.CreateSubscriptionRequest{Name: "hook", Mode: webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
		Push: &webhookv1.PushConfig{Endpoint: "http://10.1.2.3:8080/hook?tenant=7", AllowPrivateNetwork: true, SigningSecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Mode != store.SubscriptionPush || sub.Push == nil || sub.Push.Timeout != defaultPushTimeout || !sub.Push.AllowPrivateNetwork {
		t.Fatalf("subscription %+v", sub)
	}
	if strings.Contains(string(sub.Push.Secret), strings.TrimPrefix(secret, "whsec_")) {
		t.Fatal("the stored secret is not sealed")
	}
	got, err := ring.Open(sub.Push.Secret, pushSecretAAD(sub.ID))
	if err != nil || string(got) != secret {
		t.Fatalf("open: %v", err)
	}
	if _, err := ring.Open(sub.Push.Secret, pushSecretAAD("0190b6a0-0000-7000-8000-000000000001")); err == nil {
		t.Fatal("the sealed secret opens for another subscription")
	}
	j, err := protojson.Marshal(subscriptionProto(sub))
	if err != nil {
		t.Fatal(err)
	}
	js := string(j)
	if !strings.Contains(js, `"endpoint":"http://10.1.2.3:8080/hook?REDACTED"`) || !strings.Contains(js, `"timeout":"10s"`) || !strings.Contains(js, `SUBSCRIPTION_MODE_PUSH`) {
		t.Fatalf("answer %s lacks the push configuration", js)
	}
	if strings.Contains(js, "tenant=7") {
		t.Fatalf("answer %s shows the endpoint's query", js)
	}
	if strings.Contains(js, "signingSecret") || strings.Contains(js, strings.TrimPrefix(secret, "whsec_")) {
		t.Fatalf("answer %s shows the secret", js)
	}
}

func TestRefusePush(t *testing.T) {
	if err := refusePush(&store.Subscription{ID: "x", Mode: store.SubscriptionPull}); err != nil {
		t.Fatal(err)
	}
	if err := refusePush(&store.Subscription{ID: "x", Mode: store.SubscriptionPush}); err == nil {
		t.Fatal("push subscription not refused")
	}
}

// TestCheckEndpointAcceptsNamesAndAddresses: the numeric-host rule leaves names (digits inside labels
// included), dotted-decimal IPv4 and IPv6 literals alone.
func TestCheckEndpointAcceptsNamesAndAddresses(t *testing.T) {
	for _, e := range []string{"https://example.com/x", "https://example.com./x", "https://1password.com/x", "https://a1.b2.c3d/x",
		"https://8.8.8.8/x", "https://[2606:4700::1111]:8443/x", "https://xn--bcher-kva.example/x", "https://0xabc.example/x"} {
		if _, err := checkEndpoint(e, false); err != nil {
			t.Errorf("checkEndpoint(%s): %v", e, err)
		}
	}
	for _, e := range []string{"http://10.0.0.1:8080/x", "http://localhost:9999/x", "http://[::1]/x"} {
		if _, err := checkEndpoint(e, true); err != nil {
			t.Errorf("checkEndpoint(%s, allowPrivate): %v", e, err)
		}
	}
}
