package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/services/webhook/store"
)

// BenchFanOut measures what the fan-out adds to an ingest batch (EventInsertBatch of 64 events with
// 1 KiB bodies, the group committer's usual size): with no subscription, with three that each want every
// event (three deliveries per event), and with three that want none of them.
func BenchFanOut(b *testing.B, newStore func(b *testing.B) store.Store) {
	const size = 64
	for _, c := range []struct {
		name    string
		filters []store.Filter
	}{
		{"subscriptions=0", nil},
		{"subscriptions=3/all-match", []store.Filter{{}, {Sources: []string{"bench"}}, {Sources: []string{"other", "bench"}, EventTypes: []string{"push"}}}},
		{"subscriptions=3/none-match", []store.Filter{{Sources: []string{"other"}}, {Modules: []string{"Deals"}}, {EventTypes: []string{"invoice.paid"}}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newStore(b)
			for i, f := range c.filters {
				if err := s.SubscriptionCreate(context.Background(), newSubscription(fmt.Sprint("bench-", i), f)); err != nil {
					b.Fatal(err)
				}
			}
			pad := strings.Repeat("x", 900)
			n := 0
			b.ResetTimer()
			for range b.N {
				es := make([]*store.Event, size)
				for i := range es {
					n++
					es[i] = &store.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "bench", DedupeKey: fmt.Sprintf("id:%d", n),
						Status: store.StatusPending, ContentType: "application/json", Payload: []byte(`{"id":"` + fmt.Sprint(n) + `","pad":"` + pad + `"}`),
						Headers:     []store.Header{{Name: "Content-Type", Values: []string{"application/json"}}},
						ReceiveTime: time.Now().UTC().Truncate(time.Microsecond), SenderAddress: "127.0.0.1", Normalised: store.Normalised{EventType: "push"}}
				}
				if _, err := s.EventInsertBatch(context.Background(), es); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/event")
		})
	}
}

// BenchClaimAck measures the consumer's side per delivery: claims of 10 from one subscription, each
// delivery then acked on its own (DeliverySettle), or the 10 in one DeliverySettleBatch (batch), from one
// goroutine.
func BenchClaimAck(b *testing.B, newStore func(b *testing.B) store.Store) {
	for _, batch := range []bool{false, true} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) { benchClaimAck(b, newStore(b), batch) })
	}
}

func benchClaimAck(b *testing.B, s store.Store, batch bool) {
	ctx := context.Background()
	sub := newSubscription("bench", store.Filter{})
	if err := s.SubscriptionCreate(ctx, sub); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i += 100 {
		var es []*store.Event
		for j := i; j < min(b.N, i+100); j++ {
			es = append(es, event("bench", fmt.Sprint("ack-", j), []byte("{}")))
		}
		if _, err := s.EventInsertBatch(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now().Add(time.Second)
	b.ResetTimer()
	for done := 0; done < b.N; {
		claim, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: sub.ID, Consumer: "bench", Now: now, Limit: 10})
		cs := claim.Claimed
		if err != nil || len(cs) == 0 {
			b.Fatalf("claim: %d %v", len(cs), err)
		}
		var ps []store.SettleParams
		for _, c := range cs {
			ps = append(ps, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now})
		}
		if batch {
			if _, err := s.(BatchSettler).DeliverySettleBatch(ctx, ps); err != nil {
				b.Fatal(err)
			}
		} else {
			for _, p := range ps {
				if _, err := s.DeliverySettle(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		}
		done += len(cs)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/delivery")
}
