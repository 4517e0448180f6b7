package sergasctl_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/db"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

// A backlog two hours old on three subscriptions, each stuck for its own reason, is explained per
// subscription with what to do: a pull subscription nobody consumes, a push subscription whose endpoint
// fails (its last error named, the endpoint without its query), and a paused one. A fresh backlog is
// not explained.
func TestHealthExplainsADeepBacklog(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup", "--service", "webhook")
		h := serviceDB(t, e, "webhook")
		ws := webhookStoreOf(h)
		now := time.Now().UTC().Truncate(time.Microsecond)
		newSub := func(name string, mode webhookstore.SubscriptionMode, push *webhookstore.PushConfig) *webhookstore.Subscription {
			t.Helper()
			s := &webhookstore.Subscription{ID: uuid.Must(uuid.NewV7()).String(), Name: name,
				Retry:         webhookstore.RetryPolicy{MaxRetries: 5, BackoffBase: time.Second, BackoffCap: time.Minute},
				LeaseDuration: 30 * time.Second, State: webhookstore.SubscriptionActive, CreateTime: now, UpdateTime: now, Mode: mode, Push: push}
			if err := ws.SubscriptionCreate(ctx, s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		pull := newSub("crm-sync", webhookstore.SubscriptionPull, nil)
		push := newSub("billing-hook", webhookstore.SubscriptionPush, &webhookstore.PushConfig{Endpoint: "https://billing.example/hooks?token=s3cret",
			Timeout: 5 * time.Second, Secret: []byte("sealed")})
		paused := newSub("archive", webhookstore.SubscriptionPull, nil)
		if _, err := ws.SubscriptionSetState(ctx, paused.ID, webhookstore.SubscriptionPaused, now); err != nil {
			t.Fatal(err)
		}
		old := now.Add(-2 * time.Hour)
		for _, key := range []string{"k1", "k2", "k3"} {
			if _, _, err := ws.EventInsert(ctx, &webhookstore.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: key,
				Status: webhookstore.StatusPending, ContentType: "application/json", Payload: []byte(`{}`), ReceiveTime: old}); err != nil {
				t.Fatal(err)
			}
		}
		// The push worker tried the billing endpoint three times per delivery and got 503 (as its settle
		// records it), and gave up on one.
		execSQL(t, h, "UPDATE deliveries SET status = 4, attempt_count = 3, consumer = 'push/w1', last_error = 'HTTP 503 Service Unavailable' WHERE subscription_id = $1", push.ID)
		execSQL(t, h, "UPDATE deliveries SET status = 5, available_time = NULL WHERE id = (SELECT min(id) FROM deliveries WHERE subscription_id = $1)", push.ID)

		var doc backlogDoc
		r := mustRun(t, e, 0, "health", "--service", "webhook", "--json")
		r.decode(t, &doc)
		s := doc.Services[0]
		byName := map[string]backlogSubDoc{}
		for _, b := range s.Webhook.Subscriptions {
			byName[b.Name] = b
		}
		check := func(name string, wants ...string) {
			t.Helper()
			b := byName[name]
			if b.OldestAge < 7000 || b.Advice == "" {
				t.Errorf("%s: oldest %v s, advice %q", name, b.OldestAge, b.Advice)
			}
			for _, w := range wants {
				if !strings.Contains(b.Advice, w) {
					t.Errorf("%s advice lacks %q: %q", name, w, b.Advice)
				}
			}
			found := false
			for _, a := range s.Advice {
				found = found || a == b.Advice
			}
			if !found {
				t.Errorf("%s advice is not among the service's: %q", name, s.Advice)
			}
		}
		check("crm-sync", "subscription crm-sync ("+pull.ID+", pull): 3 deliveries waiting, the oldest for 2h0m", "no consumer has taken any", "Start its consumer")
		check("billing-hook", "billing-hook ("+push.ID+", push): 2 deliveries waiting", "its endpoint https://billing.example/hooks fails",
			`attempt 3 ended with "HTTP 503 Service Unavailable"`, "1 dead letter(s): RedriveDeliveries")
		check("archive", "it is paused", "ResumeSubscription")
		if b := byName["billing-hook"]; b.Mode != "push" || b.LastError != "HTTP 503 Service Unavailable" || b.Attempts != 3 || b.LastConsumer != "push/w1" ||
			strings.Contains(r.stdout, "s3cret") {
			t.Errorf("billing-hook: %+v (the endpoint's query must not be printed)", b)
		}
		if b := byName["archive"]; b.State != "paused" {
			t.Errorf("archive state %q", b.State)
		}
		text := mustRun(t, e, 0, "health", "--service", "webhook").stdout
		if !strings.Contains(text, "ADVICE subscription crm-sync") {
			t.Errorf("text output does not explain the backlog:\n%s", text)
		}

		// A backlog younger than a minute is the normal state of a busy subscription: no advice.
		execSQL(t, h, "DELETE FROM deliveries")
		if _, _, err := ws.EventInsert(ctx, &webhookstore.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: "fresh",
			Status: webhookstore.StatusPending, ContentType: "application/json", Payload: []byte(`{}`), ReceiveTime: now}); err != nil {
			t.Fatal(err)
		}
		doc = backlogDoc{}
		mustRun(t, e, 0, "health", "--service", "webhook", "--json").decode(t, &doc)
		if a := doc.Services[0].Advice; len(a) != 0 {
			t.Errorf("advice for a fresh backlog: %q", a)
		}
	})
}

type backlogDoc struct {
	Services []struct {
		Webhook *struct {
			Subscriptions []backlogSubDoc
		}
		Advice []string
	}
}

type backlogSubDoc struct {
	Name, Mode, State string
	OldestAge         float64 `json:"oldest_undelivered_age_seconds"`
	Attempts          int32   `json:"oldest_attempts"`
	LastConsumer      string  `json:"last_consumer"`
	LastError         string  `json:"last_error"`
	Advice            string
}
