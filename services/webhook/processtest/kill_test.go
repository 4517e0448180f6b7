package processtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/dbtest"
)

// senders is how many concurrent gRPC clients deliver: enough to keep several commits in flight.
const senders = 16

// killAfter is how many new deliveries are acknowledged before the kill.
const killAfter = 600

// cut is a delivery whose answer the kill hid; orig is the event id it was acknowledged with before
// when it was a repeat, "" when it was new.
type cut struct {
	d    delivery
	orig string
}

// TestKillDuringSignedIngestsLosesNoAcknowledgedEvent: sergas-webhook killed with SIGKILL while
// concurrent senders ingest signed deliveries (each body unique; every fourth call a repeat of an
// acknowledged delivery, which must be answered as a duplicate of its event; every eighth a delivery
// that two senders send at about the same time, answered with one event, as new at most once) loses
// nothing it acknowledged: after a restart on the same database every acknowledged event is stored
// under the id it was acknowledged with, with the exact bytes sent, and nothing is stored twice or
// stored that was not sent. The calls the kill cut off are sent again, as a sender that got no answer
// does: a delivery committed before the kill is answered as a duplicate of its event, one that was not
// is stored, once; sent a second time, each is a duplicate.
func TestKillDuringSignedIngestsLosesNoAcknowledgedEvent(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			c := dbtest.Config(t, d)
			k := newKeys(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			p := startWebhook(t, k, c)
			ingest := client(t, p, k.ingest)
			var (
				mu       sync.Mutex
				sent     = map[string]delivery{} // every delivery, by id, before it is first sent
				acks     []acked                 // every answer that is not a repeat's
				shared   = map[string][]acked{}  // the answers to deliveries two senders send
				cutOff   []cut
				failures []error // answers that must never happen
			)
			p.KillDuringLoad(t, senders, killAfter, func(w, n int) (int, error) {
				var next cut
				mu.Lock()
				if n%4 == 3 && len(acks) > 0 {
					a := acks[(w*7919+n*31)%len(acks)] // often another sender's
					next = cut{d: a.d, orig: a.eventID}
				}
				mu.Unlock()
				both := n%8 == 5 // sent by senders w and w^1 at about the same time
				if next.orig == "" {
					if both {
						next.d = newDelivery(fmt.Sprintf("p%d-%d", w/2, n))
					} else {
						next.d = newDelivery(fmt.Sprintf("w%d-%d", w, n))
					}
					mu.Lock()
					sent[next.d.id] = next.d
					mu.Unlock()
				}
				resp, err := ingest.Ingest(ctx, next.d.request())
				mu.Lock()
				defer mu.Unlock()
				a := acked{d: next.d, eventID: resp.GetEventId(), duplicate: resp.GetDuplicate()}
				switch {
				case err != nil:
					cutOff = append(cutOff, next)
					return 0, fmt.Errorf("delivery %s: %w", next.d.id, err)
				case next.orig != "" && (!a.duplicate || a.eventID != next.orig):
					failures = append(failures, fmt.Errorf("repeat of delivery %s answered duplicate=%v event %s, want a duplicate of %s",
						next.d.id, a.duplicate, a.eventID, next.orig))
				case next.orig != "":
				case both:
					shared[next.d.id] = append(shared[next.d.id], a) // the pair's answers are compared below
					acks = append(acks, a)
					if !a.duplicate {
						return 1, nil
					}
				case a.duplicate:
					failures = append(failures, fmt.Errorf("new delivery %s answered as a duplicate of %s", next.d.id, a.eventID))
				default:
					acks = append(acks, a)
					return 1, nil
				}
				return 0, nil
			})
			// Both senders of a delivery are answered with one event, as new at most once.
			for id, as := range shared {
				news := 0
				for _, a := range as {
					if a.eventID != as[0].eventID {
						failures = append(failures, fmt.Errorf("delivery %s sent by two senders answered with events %s and %s", id, as[0].eventID, a.eventID))
					}
					if !a.duplicate {
						news++
					}
				}
				if news > 1 {
					failures = append(failures, fmt.Errorf("delivery %s sent by two senders answered as new %d times", id, news))
				}
			}
			if len(failures) > 0 {
				t.Fatalf("%d wrong answers, first: %v", len(failures), errors.Join(failures[:min(len(failures), 5)]...))
			}
			if len(cutOff) != senders {
				t.Fatalf("%d senders saw the kill, want all %d", len(cutOff), senders)
			}
			answered := len(acks)

			// Restart on the same database: everything acknowledged is there, exactly as sent, once.
			p = startWebhook(t, k, c)
			ingest = client(t, p, k.ingest)
			read := client(t, p, k.read)
			before := storedEvents(t, ctx, read, sent)
			checkAcked(t, before, acks)

			// The deliveries the kill cut off, sent again: one committed before the kill (or by the retry of
			// the same delivery cut off at its other sender) is a duplicate of its event; one that was not is
			// stored now. A second retry is a duplicate either way.
			known := map[string]string{} // delivery id -> its event, as stored so far
			for id, e := range before.byDelivery {
				known[id] = e.GetId()
			}
			var storedBefore, storedNow, repeats int
			for _, cu := range cutOff {
				resp, err := ingest.Ingest(ctx, cu.d.request())
				if err != nil {
					t.Fatalf("retrying delivery %s after the restart: %v", cu.d.id, err)
				}
				prev, ok := known[cu.d.id]
				switch {
				case ok && (!resp.GetDuplicate() || resp.GetEventId() != prev):
					t.Fatalf("delivery %s is stored as %s; its retry answered duplicate=%v event %s", cu.d.id, prev, resp.GetDuplicate(), resp.GetEventId())
				case !ok && resp.GetDuplicate():
					t.Fatalf("delivery %s was not stored, yet its retry answered as a duplicate of %s", cu.d.id, resp.GetEventId())
				case !ok:
					storedNow++
					known[cu.d.id] = resp.GetEventId()
				case cu.orig != "":
					repeats++
				default:
					storedBefore++
				}
				acks = append(acks, acked{d: cu.d, eventID: resp.GetEventId()})
				again, err := ingest.Ingest(ctx, cu.d.request())
				if err != nil || !again.GetDuplicate() || again.GetEventId() != resp.GetEventId() {
					t.Fatalf("delivery %s sent a second time after the restart: duplicate=%v event %s (err %v), want a duplicate of %s",
						cu.d.id, again.GetDuplicate(), again.GetEventId(), err, resp.GetEventId())
				}
			}
			after := storedEvents(t, ctx, read, sent)
			checkAcked(t, after, acks)
			if len(after.byID) != len(before.byID)+storedNow {
				t.Fatalf("%d events stored after the retries, want %d before and %d new", len(after.byID), len(before.byID), storedNow)
			}
			t.Logf("%d deliveries acknowledged before the kill (%d shared by two senders), %d stored; of %d cut off, %d were repeats, %d had been stored unanswered (or by the same delivery's retry), %d were stored on retry",
				answered, len(shared), len(before.byID), len(cutOff), repeats, storedBefore, storedNow)
			p.Stop(t)
		})
	}
}
