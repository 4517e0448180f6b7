package processtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// What became of a hand-out.
const (
	outHeld    = ""        // not settled (yet)
	outAcked   = "acked"   // its Ack was answered OK
	outNacked  = "nacked"  // its Nack was answered OK
	outUnknown = "unknown" // its Ack or Nack failed (the process was killed): it may or may not have been settled
	outRefused = "refused" // its ack id was refused: its lease had ended and passed on
)

// handout is one lease of a delivery as a consumer received it, and what became of it.
type handout struct {
	deliveryID, eventID, consumer, ackID string
	attempt                              int32
	received                             time.Time // when the consumer read it from its stream
	leaseExpire                          time.Time // the end of the lease, as the service sent it
	settleSent                           time.Time // when its Ack or Nack was sent; zero while held
	sentAs                               string    // outAcked or outNacked once that call is sent
	outcome                              string
}

// ledger records every hand-out every consumer of a test sees and every settlement, and checks the
// guarantees as they happen: a delivery is handed out again only after its holder gave it back or its
// lease ended, never after an Ack of it was answered OK; an Ack is accepted once per delivery, and only
// for its latest lease.
type ledger struct {
	mu         sync.Mutex
	byDelivery map[string][]*handout
	acked      map[string]*handout // delivery id -> the hand-out whose Ack was answered OK
	ackedEvent map[string]string   // event id -> its delivery, acked OK
	failures   []error
	// ackedMore is closed (and replaced) whenever an Ack is answered OK, for senders pacing themselves
	// on the consumer's progress.
	ackedMore chan struct{}
}

func newLedger() *ledger {
	return &ledger{byDelivery: map[string][]*handout{}, acked: map[string]*handout{}, ackedEvent: map[string]string{},
		ackedMore: make(chan struct{})}
}

func (l *ledger) failf(format string, args ...any) {
	l.failures = append(l.failures, fmt.Errorf(format, args...))
}

// receive records ld, read by consumer at now.
func (l *ledger) receive(consumer string, ld *webhookv1.LeasedDelivery, now time.Time) *handout {
	d := ld.GetDelivery()
	h := &handout{deliveryID: d.GetId(), eventID: ld.GetEvent().GetId(), consumer: consumer, ackID: ld.GetAckId(),
		attempt: d.GetAttemptCount(), received: now, leaseExpire: d.GetLeaseExpireTime().AsTime()}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.acked[h.deliveryID]; a != nil {
		l.failf("delivery %s handed to %s (attempt %d) after the Ack of attempt %d by %s was answered OK", h.deliveryID, consumer, h.attempt, a.attempt, a.consumer)
	}
	hs := l.byDelivery[h.deliveryID]
	if n := len(hs); n > 0 {
		prev := hs[n-1]
		switch {
		case h.attempt <= prev.attempt:
			l.failf("delivery %s handed to %s as attempt %d after attempt %d (to %s)", h.deliveryID, consumer, h.attempt, prev.attempt, prev.consumer)
		case prev.sentAs == outNacked && !prev.settleSent.After(now): // given back before (the answer may still be on its way)
		case !now.Before(prev.leaseExpire): // its lease had ended
		default:
			l.failf("delivery %s handed to %s (attempt %d) at %s while %s held attempt %d (%q, lease to %s)", h.deliveryID, consumer, h.attempt,
				now.Format(time.RFC3339Nano), prev.consumer, prev.attempt, prev.outcome, prev.leaseExpire.Format(time.RFC3339Nano))
		}
	}
	l.byDelivery[h.deliveryID] = append(hs, h)
	return h
}

// sending records that an Ack or Nack (what) of hs is sent at sent, before it is: once it commits, the
// next hand-out may reach another consumer before its answer reaches this one.
func (l *ledger) sending(hs []*handout, what string, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range hs {
		h.settleSent, h.sentAs = sent, what
	}
}

// settled records the answer to an Ack or Nack (what) of hs, answered at answered. A
// refusal is right only once a lease has ended (it may have passed on); before, the lease was current.
func (l *ledger) settled(hs []*handout, what string, answered time.Time, err error, refusedIDs []string) {
	no := map[string]bool{}
	for _, id := range refusedIDs {
		no[id] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range hs {
		switch {
		case err != nil:
			h.outcome = outUnknown
		case no[h.ackID]:
			h.outcome = outRefused
			if answered.Before(h.leaseExpire) {
				l.failf("%s of delivery %s attempt %d by %s refused before its lease ended (%s)", what, h.deliveryID, h.attempt, h.consumer, h.leaseExpire.Format(time.RFC3339Nano))
			}
		case what == outAcked:
			h.outcome = outAcked
			if a := l.acked[h.deliveryID]; a != nil {
				l.failf("delivery %s acked twice: attempt %d by %s and attempt %d by %s", h.deliveryID, a.attempt, a.consumer, h.attempt, h.consumer)
				continue
			}
			if last := l.byDelivery[h.deliveryID]; last[len(last)-1] != h {
				l.failf("Ack of delivery %s attempt %d by %s accepted after attempt %d went to %s", h.deliveryID, h.attempt, h.consumer,
					last[len(last)-1].attempt, last[len(last)-1].consumer)
			}
			l.acked[h.deliveryID] = h
			l.ackedEvent[h.eventID] = h.deliveryID
			close(l.ackedMore)
			l.ackedMore = make(chan struct{})
		default:
			h.outcome = what
		}
	}
}

// repeated records the answer to an Ack of h sent again after h was settled: it must be refused.
func (l *ledger) repeated(h *handout, err error, refusedIDs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.failf("Ack of delivery %s repeated: %v", h.deliveryID, err)
	case len(refusedIDs) != 1 || refusedIDs[0] != h.ackID:
		l.failf("Ack of delivery %s attempt %d by %s, repeated after its %s was answered OK, was accepted", h.deliveryID, h.attempt, h.consumer, h.outcome)
	}
}

// failed reports whether a violation has been recorded: a test waiting on the consumers stops waiting.
func (l *ledger) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failures) > 0
}

// check fails t with the first failures recorded.
func (l *ledger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) > 0 {
		t.Fatalf("%d violations, first: %v", len(l.failures), errors.Join(l.failures[:min(len(l.failures), 5)]...))
	}
}

// handouts returns the hand-outs of delivery id, oldest first.
func (l *ledger) handouts(id string) []*handout {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*handout(nil), l.byDelivery[id]...)
}

// lastOutcome is what became of the latest hand-out of delivery id so far ("" when none).
func (l *ledger) lastOutcome(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if hs := l.byDelivery[id]; len(hs) > 0 {
		return hs[len(hs)-1].outcome
	}
	return ""
}

// ackedSince returns a channel closed at the next Ack answered OK.
func (l *ledger) ackedSince() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ackedMore
}

// ackedCount is how many deliveries were acked OK.
func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// eventAcked reports whether an Ack of event's delivery was answered OK.
func (l *ledger) eventAcked(event string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ackedEvent[event] != ""
}
