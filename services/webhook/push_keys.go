package webhook

import (
	"context"
	"fmt"

	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/webhook/store"
)

// pushKeyCheckPages bounds how many pages of subscriptions the start-up check reads.
const pushKeyCheckPages = 100

// checkPushKeys refuses to start when push subscriptions are stored but WEBHOOK_ENCRYPTION_KEYS is not
// set: their signing secrets could not be opened, and their deliveries would wait, unsent, until a
// replica with the keys ran. (A keyring that lacks the key of one secret is reported by the workers:
// the service may be mid-rotation.)
func checkPushKeys(ctx context.Context, st store.Store, ring *keyring.Keyring) error {
	ds, ok := st.(store.DeliveryStore)
	if !ok || ring != nil {
		return nil
	}
	after := ""
	for range pushKeyCheckPages {
		subs, err := ds.SubscriptionList(ctx, store.SubscriptionListParams{AfterID: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, s := range subs {
			if s.Mode == store.SubscriptionPush {
				return fmt.Errorf("WEBHOOK_ENCRYPTION_KEYS is not set, but push subscription %s is stored whose signing secret it sealed; set it", s.ID)
			}
		}
		if len(subs) < 1000 {
			return nil
		}
		after = subs[len(subs)-1].ID
	}
	return nil
}
