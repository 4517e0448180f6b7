package webhook

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// A service without WEBHOOK_ENCRYPTION_KEYS refuses to start once a push subscription is stored (its
// deliveries could never be signed); pull subscriptions alone, or a keyring, let it start.
func TestStartNeedsKeysForStoredPushSubscriptions(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		st := newStore(t, d)
		ds := st.(store.DeliveryStore)
		now := time.Now().UTC()
		sub := func(name string, mode store.SubscriptionMode) {
			s := &store.Subscription{ID: uuid.Must(uuid.NewV7()).String(), Name: name, Mode: mode,
				Retry:         store.RetryPolicy{MaxRetries: 1, BackoffBase: time.Second, BackoffCap: time.Minute},
				LeaseDuration: time.Minute, State: store.SubscriptionActive, CreateTime: now, UpdateTime: now}
			if mode == store.SubscriptionPush {
				s.Push = &store.PushConfig{Endpoint: "https://hooks.example/x", Timeout: 10 * time.Second, Secret: []byte("sealed")}
			}
			if err := ds.SubscriptionCreate(t.Context(), s); err != nil {
				t.Fatal(err)
			}
		}
		sub("pulled", store.SubscriptionPull)
		if err := checkPushKeys(t.Context(), st, nil); err != nil {
			t.Fatalf("pull subscriptions only: %v", err)
		}
		sub("pushed", store.SubscriptionPush)
		err := checkPushKeys(t.Context(), st, nil)
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_ENCRYPTION_KEYS") {
			t.Fatalf("a push subscription without keys: %v", err)
		}
		if err := checkPushKeys(t.Context(), st, testPushRing(t)); err != nil {
			t.Fatalf("with keys: %v", err)
		}
	})
}
