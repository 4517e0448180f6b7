package processtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
)

const (
	// killSenders ingest while the consumer streams; the consumer is KillDuringLoad's last sender.
	killSenders = 4
	// killAfterAcks is how many Acks are answered OK before the kill.
	killAfterAcks = 150
	// killLease is the subscription's lease: short, so that what was leased at the kill comes back soon.
	killLease = 2 * time.Second
	// afterRestart is how many more events are ingested once the service is back.
	afterRestart = 100
	// holdEvery: the consumer holds (never settles) every holdEvery-th first hand-out before the kill,
	// so that some deliveries are leased when it comes.
	holdEvery = 8
	// maxAhead is how far ingest may run ahead of the consumer's Acks before the kill.
	maxAhead = 300
)

// TestKillMidStreamLosesNoDelivery: a consumer streams deliveries (Receive, max_in_flight 20) and acks
// them while four senders ingest signed events; it leaves one first hand-out in eight unsettled, so
// that leases are open when sergas-webhook is killed with SIGKILL after 150 Acks. The service restarts
// on the same database, the calls the kill cut off are sent again, 100 more events are ingested, and the
// consumer reconnects under its name and acks until every acknowledged event's delivery is acked. Then:
//   - no delivery whose Ack was answered OK (before or after the kill) is handed out again;
//   - what was leased at the kill (held, or in an Ack the kill cut off that did not commit) is handed
//     out again, and not before its lease ended;
//   - every stored event has one delivery, DELIVERED, acked by the consumer (or by an Ack the kill
//     cut off that committed);
//
// and throughout, a hand-out never overlaps the lease before it (the ledger's checks).
func TestKillMidStreamLosesNoDelivery(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			c := dbtest.Config(t, d)
			k := newDeliveryKeys(t)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			p := startDeliveryWebhook(t, k, c)
			cl := deliveryClientsOf(t, p, k)
			sub := createSubscription(t, ctx, cl.admin, "kill", killLease, 10)

			l := newLedger()
			var (
				mu     sync.Mutex
				sent   = map[string]delivery{}
				events = map[string]bool{} // every event acknowledged to a sender
				cutOff []delivery
				holds  int
			)
			cons := &consumer{name: "agent-1", sub: sub, recv: cl.consume, settle: cl.consume, maxInFlight: 20, l: l, repeatEvery: 5,
				decide: func(h *handout) action {
					if h.attempt > 1 {
						return doAck
					}
					holds++ // only the consumer's goroutine decides
					if holds%holdEvery == 0 {
						return doHold
					}
					return doAck
				}}
			p.KillDuringLoad(t, killSenders+1, killAfterAcks, func(w, n int) (int, error) {
				if w == killSenders { // the consumer
					if n == 0 {
						if err := cons.open(ctx); err != nil {
							return 0, err
						}
					}
					return cons.step(ctx)
				}
				more := l.ackedSince()
				mu.Lock()
				ahead := len(events) - l.ackedCount()
				mu.Unlock()
				if ahead > maxAhead {
					// Keeps the backlog the consumer drains after the restart bounded (under -race too): wait
					// for the consumer's next Ack (at most a second: the kill may stop it), then make a call
					// the kill cuts off like an ingest.
					select {
					case <-more:
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
					_, err := cl.read.GetSubscription(ctx, &webhookv1.GetSubscriptionRequest{Id: sub})
					return 0, err
				}
				dl := newDelivery(fmt.Sprintf("k%d-%d", w, n))
				mu.Lock()
				sent[dl.id] = dl
				mu.Unlock()
				resp, err := cl.ingest.Ingest(ctx, dl.request())
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					cutOff = append(cutOff, dl)
					return 0, err
				}
				events[resp.GetEventId()] = true
				return 0, nil
			})
			l.check(t)

			// What the kill left leased: the last hand-out of a delivery, held or in a call the kill cut off.
			var atKill []handout
			l.mu.Lock()
			for _, hs := range l.byDelivery {
				if h := hs[len(hs)-1]; h.outcome == outHeld || h.outcome == outUnknown {
					atKill = append(atKill, *h)
				}
			}
			ackedBefore := len(l.acked)
			l.mu.Unlock()
			heldAtKill := 0
			for _, h := range atKill {
				if h.outcome == outHeld {
					heldAtKill++
				}
			}
			if heldAtKill == 0 {
				t.Fatalf("no delivery was held at the kill (%d hand-outs held in all): the test did not exercise leases open at a kill", holds/holdEvery)
			}

			// Restart; the consumer reconnects under its name while the cut-off calls are sent again and more
			// events are ingested.
			p = startDeliveryWebhook(t, k, c)
			cl = deliveryClientsOf(t, p, k)
			cons = &consumer{name: "agent-1", sub: sub, recv: cl.consume, settle: cl.consume, maxInFlight: 20, l: l, repeatEvery: 5, decide: ackAll}
			cctx, stopConsumer := context.WithCancel(ctx)
			defer stopConsumer()
			errc := make(chan error, 1)
			go func() { errc <- cons.run(cctx) }()
			more := append([]delivery(nil), cutOff...)
			for n := range afterRestart {
				dl := newDelivery(fmt.Sprintf("after-%d", n))
				sent[dl.id] = dl
				more = append(more, dl)
			}
			for _, dl := range more {
				resp, err := cl.ingest.Ingest(ctx, dl.request())
				if err != nil {
					t.Fatalf("ingest %s after the restart: %v", dl.id, err)
				}
				events[resp.GetEventId()] = true
			}

			// Until every acknowledged event is acked: by the consumer, or by an Ack the kill cut off that
			// committed (its delivery is DELIVERED and never comes back).
			unknownOf := map[string]string{} // event -> delivery, for Acks the kill cut off
			for _, h := range atKill {
				if h.outcome == outUnknown {
					unknownOf[h.eventID] = h.deliveryID
				}
			}
			committed := map[string]bool{}
			testutil.Eventually(t, 90*time.Second, "every acknowledged event acked", func() bool {
				select {
				case err := <-errc:
					t.Fatalf("the consumer stopped after the restart: %v", err)
				default:
				}
				if l.failed() {
					return true // reported below
				}
				for e := range events {
					if l.eventAcked(e) || committed[e] {
						continue
					}
					id, ok := unknownOf[e]
					if !ok || l.lastOutcome(id) != outUnknown {
						return false // not acked yet, or handed out again since the kill and not acked yet
					}
					resp, err := cl.read.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: id})
					if err != nil {
						t.Fatalf("GetDelivery %s: %v", id, err)
					}
					if resp.GetDelivery().GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED {
						return false
					}
					committed[e] = true
				}
				return true
			})
			stopConsumer()
			if err := <-errc; err != nil {
				t.Fatalf("consumer: %v", err)
			}
			l.check(t)

			// What was leased at the kill came back after its lease, unless a cut-off Ack had committed.
			back := 0
			for _, h := range atKill {
				hs := l.handouts(h.deliveryID)
				i := 0
				for i < len(hs) && hs[i].attempt != h.attempt {
					i++
				}
				switch {
				case i >= len(hs)-1 && h.outcome == outHeld:
					t.Fatalf("delivery %s, held at the kill (attempt %d), was never handed out again", h.deliveryID, h.attempt)
				case i >= len(hs)-1: // a cut-off Ack that committed
				case hs[i+1].received.Before(h.leaseExpire):
					t.Fatalf("delivery %s handed out again at %s, before its lease at the kill ended (%s)", h.deliveryID,
						hs[i+1].received.Format(time.RFC3339Nano), h.leaseExpire.Format(time.RFC3339Nano))
				default:
					back++
				}
			}

			// Every stored event has one delivery, DELIVERED, acked by the consumer or by a cut-off Ack.
			stored := storedEvents(t, ctx, cl.read, sent)
			for e := range events {
				if stored.byID[e] == nil {
					t.Fatalf("acknowledged event %s is not stored", e)
				}
			}
			ds := listDeliveries(t, ctx, cl.read, sub)
			if len(ds) != len(stored.byID) {
				t.Fatalf("%d deliveries for %d stored events, want one each", len(ds), len(stored.byID))
			}
			perEvent := map[string]bool{}
			for _, d := range ds {
				hs := l.handouts(d.GetId())
				switch {
				case stored.byID[d.GetEventId()] == nil || perEvent[d.GetEventId()]:
					t.Fatalf("delivery %s: event %s not stored or delivered twice", d.GetId(), d.GetEventId())
				case d.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED:
					t.Fatalf("delivery %s: %v, want DELIVERED", d.GetId(), d.GetStatus())
				case len(hs) == 0:
					t.Fatalf("delivery %s is DELIVERED but was never handed out", d.GetId())
				case hs[len(hs)-1].outcome != outAcked && !committed[d.GetEventId()]:
					t.Fatalf("delivery %s is DELIVERED but its last hand-out is %q", d.GetId(), hs[len(hs)-1].outcome)
				}
				perEvent[d.GetEventId()] = true
			}
			t.Logf("%d deliveries acked before the kill, %d leased at it (%d held, %d in a cut-off Ack: %d of them committed), %d came back after their lease; %d events stored, all delivered",
				ackedBefore, len(atKill), heldAtKill, len(atKill)-heldAtKill, len(committed), back, len(stored.byID))
			p.Stop(t)
		})
	}
}
