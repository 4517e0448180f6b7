package webhook

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
)

// A subscription is stored with every default filled in and read back the same through Get and List;
// pause and resume change its state; delete removes it; names are unique.
func TestSubscriptionLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{"WEBHOOK_MAX_RETRIES": "7"})
		created, err := h.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "deals-agent",
			Filter: &webhookv1.EventFilter{Sources: []string{"zoho"}, Modules: []string{"Deals"}, Operations: []string{"insert", "update"}}})
		if err != nil {
			t.Fatal(err)
		}
		sub := created.GetSubscription()
		if sub.GetRetryPolicy().GetMaxRetries() != 7 || sub.GetRetryPolicy().GetBackoffBase().AsDuration() != time.Second ||
			sub.GetRetryPolicy().GetBackoffCap().AsDuration() != 10*time.Minute || sub.GetLeaseDuration().AsDuration() != 30*time.Second ||
			sub.GetState() != webhookv1.SubscriptionState_SUBSCRIPTION_STATE_ACTIVE || !sub.GetCreateTime().AsTime().Equal(h.clock.now()) {
			t.Fatalf("defaults: %v", sub)
		}
		got, err := h.client.GetSubscription(t.Context(), &webhookv1.GetSubscriptionRequest{Id: strings.ToUpper(sub.GetId())})
		if err != nil || !proto.Equal(got.GetSubscription(), sub) {
			t.Fatalf("get: %v %v, want %v", got, err, sub)
		}
		if _, err := h.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "deals-agent"}); status.Code(err) != codes.AlreadyExists {
			t.Fatalf("taken name: %v", err)
		}
		h.clock.advance(time.Second)
		paused, err := h.client.PauseSubscription(t.Context(), &webhookv1.PauseSubscriptionRequest{Id: sub.GetId()})
		if err != nil || paused.GetSubscription().GetState() != webhookv1.SubscriptionState_SUBSCRIPTION_STATE_PAUSED ||
			!paused.GetSubscription().GetUpdateTime().AsTime().Equal(h.clock.now()) {
			t.Fatalf("pause: %v %v", paused, err)
		}
		resumed, err := h.client.ResumeSubscription(t.Context(), &webhookv1.ResumeSubscriptionRequest{Id: sub.GetId()})
		if err != nil || resumed.GetSubscription().GetState() != webhookv1.SubscriptionState_SUBSCRIPTION_STATE_ACTIVE {
			t.Fatalf("resume: %v %v", resumed, err)
		}
		second, err := h.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "all", Paused: true,
			RetryPolicy:   &webhookv1.RetryPolicy{MaxRetries: proto.Int32(0), BackoffBase: durationpb.New(20 * time.Millisecond)},
			LeaseDuration: durationpb.New(90 * time.Second)})
		if err != nil || second.GetSubscription().GetRetryPolicy().GetMaxRetries() != 0 ||
			second.GetSubscription().GetState() != webhookv1.SubscriptionState_SUBSCRIPTION_STATE_PAUSED {
			t.Fatalf("second: %v %v", second, err)
		}
		var names []string
		token := ""
		for range 5 {
			page, err := h.client.ListSubscriptions(t.Context(), &webhookv1.ListSubscriptionsRequest{PageSize: 1, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page.GetSubscriptions() {
				names = append(names, s.GetName())
			}
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
		if strings.Join(names, ",") != "deals-agent,all" {
			t.Fatalf("listed %v", names)
		}
		if _, err := h.client.DeleteSubscription(t.Context(), &webhookv1.DeleteSubscriptionRequest{Id: sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.GetSubscription(t.Context(), &webhookv1.GetSubscriptionRequest{Id: sub.GetId()}); status.Code(err) != codes.NotFound {
			t.Fatalf("deleted: %v", err)
		}
		if _, err := h.client.DeleteSubscription(t.Context(), &webhookv1.DeleteSubscriptionRequest{Id: sub.GetId()}); status.Code(err) != codes.NotFound {
			t.Fatalf("deleted twice: %v", err)
		}
	})
}

// Every bad field is InvalidArgument and nothing is stored.
func TestCreateSubscriptionRefusals(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{})
		many := make([]string, 51)
		for i := range many {
			many[i] = "m" + strings.Repeat("x", i)
		}
		for name, q := range map[string]*webhookv1.CreateSubscriptionRequest{
			"no name":         {},
			"upper-case name": {Name: "Deals"},
			"NUL module":      {Name: "a", Filter: &webhookv1.EventFilter{Modules: []string{"De\x00als"}}},
			"empty operation": {Name: "a", Filter: &webhookv1.EventFilter{Operations: []string{""}}},
			"long module":     {Name: "a", Filter: &webhookv1.EventFilter{Modules: []string{strings.Repeat("M", 257)}}},
			"bad source":      {Name: "a", Filter: &webhookv1.EventFilter{Sources: []string{"Zoho"}}},
			"51 modules":      {Name: "a", Filter: &webhookv1.EventFilter{Modules: many}},
			"repeat":          {Name: "a", Filter: &webhookv1.EventFilter{Sources: []string{"zoho", "zoho"}}},
			"101 retries":     {Name: "a", RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: proto.Int32(101)}},
			"-1 retries":      {Name: "a", RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: proto.Int32(-1)}},
			"tiny base":       {Name: "a", RetryPolicy: &webhookv1.RetryPolicy{BackoffBase: durationpb.New(time.Millisecond)}},
			"cap below base":  {Name: "a", RetryPolicy: &webhookv1.RetryPolicy{BackoffBase: durationpb.New(time.Hour), BackoffCap: durationpb.New(time.Minute)}},
			"2-day cap":       {Name: "a", RetryPolicy: &webhookv1.RetryPolicy{BackoffCap: durationpb.New(48 * time.Hour)}},
			"bad duration":    {Name: "a", LeaseDuration: &durationpb.Duration{Seconds: 1, Nanos: -5}},
			"short lease":     {Name: "a", LeaseDuration: durationpb.New(500 * time.Millisecond)},
			"long lease":      {Name: "a", LeaseDuration: durationpb.New(13 * time.Hour)},
		} {
			if _, err := h.client.CreateSubscription(t.Context(), q); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}
		list, err := h.client.ListSubscriptions(t.Context(), &webhookv1.ListSubscriptionsRequest{})
		if err != nil || len(list.GetSubscriptions()) != 0 {
			t.Fatalf("stored after refusals: %v %v", list, err)
		}
		for name, id := range map[string]string{"garbage": "x", "NUL": "\x00", "empty": ""} {
			if _, err := h.client.GetSubscription(t.Context(), &webhookv1.GetSubscriptionRequest{Id: id}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("get %s: %v", name, err)
			}
		}
		if _, err := h.client.ListSubscriptions(t.Context(), &webhookv1.ListSubscriptionsRequest{PageToken: "zz"}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad page token: %v", err)
		}
	})
}
