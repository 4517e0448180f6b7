package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// A subscription deleted while its deliveries are being acked (from other connections) leaves no
// attempt behind: the attempts are deleted after the deliveries, by a statement that sees the acks
// that held them.
func TestDeleteWhileSettlingLeavesNoAttempts(t *testing.T) {
	ctx := context.Background()
	s := New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	for round := range 5 {
		now := time.Now().UTC()
		sub := &store.Subscription{ID: uuid.Must(uuid.NewV7()).String(), Name: fmt.Sprint("s", round), LeaseDuration: time.Minute,
			Retry: store.RetryPolicy{MaxRetries: 3}, State: store.SubscriptionActive, CreateTime: now, UpdateTime: now}
		if err := s.SubscriptionCreate(ctx, sub); err != nil {
			t.Fatal(err)
		}
		var es []*store.Event
		for i := range 40 {
			es = append(es, &store.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: fmt.Sprint(round, "-", i),
				Payload: []byte("{}"), ReceiveTime: now})
		}
		if _, err := s.EventInsertBatch(ctx, es); err != nil {
			t.Fatal(err)
		}
		claim, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: sub.ID, Consumer: "c", Now: now.Add(time.Second), Limit: 100})
		cs := claim.Claimed
		if err != nil || len(cs) != 40 {
			t.Fatalf("claim: %d %v", len(cs), err)
		}
		first := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(cs); i += 4 {
					_, err := s.DeliverySettle(ctx, store.SettleParams{ID: cs[i].Delivery.ID, Lease: cs[i].Delivery.Lease, Now: now, Nack: i%2 == 0})
					if k := errs.KindOf(err); err != nil && k != errs.KindNotFound {
						t.Error(err)
						return
					}
					if i == 0 {
						close(first)
					}
				}
			}()
		}
		<-first
		if err := s.SubscriptionDelete(ctx, sub.ID); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		var orphans int
		if err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts a WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id)`).Scan(&orphans); err != nil {
			t.Fatal(err)
		}
		if orphans != 0 {
			t.Fatalf("round %d: %d attempts of deleted deliveries left", round, orphans)
		}
	}
}
