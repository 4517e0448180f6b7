package webhook

import (
	"sync"

	"github.com/sergas/core/services/webhook/store"
)

// subState is what the Receive streams of one subscription on this replica share, so that a wake-up
// costs one claim, not one per stream. Every stored event wakes every stream; with each stream counting
// its deliveries in flight and claiming in a write transaction of its own, most finding nothing because
// another stream took the event, the empty claims cost more than the deliveries (and on SQLite queued on
// the single writer in front of ingests and acks). A stream now skips its claim when a claim that began
// after the news that woke it is still running (covered) or found less than it asked for (drained: the
// store had nothing more due then). Claims for newer news run beside it: on PostgreSQL a claim is mostly
// waiting for round trips, and claims one after another could not keep up with the ingests. The store
// stays the only judge of what is leased: all this decides only when to ask.
type subState struct {
	*wakeup
	// claimMu guards covered and drained, work generations (the global wakeup's plus the
	// subscription's): covered is the newest one a claim began after, drained the newest one a claim
	// that found less than it asked for began after.
	claimMu sync.Mutex
	covered uint64
	drained uint64
	// mu guards rooms: for each consumer name streaming here, how many settles freed some of its room
	// (a stream whose budget was full claims again only after one, or at its poll interval).
	mu    sync.Mutex
	rooms map[string]*roomState
}

// begin reports whether a stream that read work generation work should claim: always when look is
// set, never when waitRoom is (its budget was full and nothing freed it), else when no claim that
// began after work is running or found the subscription drained. A claim that begins must end (end).
func (ss *subState) begin(work uint64, look, waitRoom bool) bool {
	ss.claimMu.Lock()
	defer ss.claimMu.Unlock()
	if !look && (waitRoom || ss.covered >= work || ss.drained >= work) {
		return false
	}
	ss.covered = max(ss.covered, work)
	return true
}

// How a claim ended, for subState.end.
const (
	claimDrained = iota // it found less than it asked for: nothing more was due
	claimFull           // it got all it asked for: more may be due
	claimNoRoom         // the consumer's budget was full: it did not claim
	claimFailed
)

// end records the end of a claim begun after work. A drained claim marks work drained; after any other
// the streams that skipped because it covered their news look again: a full or failed claim announces
// news (a deleted subscription ends every stream of it), a claim that found no room only wakes them
// (the consumers whose budget was full go on waiting for room, so that they do not wake each other).
func (ss *subState) end(work uint64, how int) {
	ss.claimMu.Lock()
	if ss.covered == work {
		ss.covered = 0 // no claim runs for news this new any more (an older one may: it covers less)
	}
	if how == claimDrained {
		ss.drained = max(ss.drained, work)
	}
	ss.claimMu.Unlock()
	switch how {
	case claimFull, claimFailed:
		ss.signal(true)
	case claimNoRoom:
		ss.signal(false)
	}
}

type roomState struct {
	streams int    // streams of this consumer name open here
	freed   uint64 // settles of its deliveries seen here
}

func newSubState() *subState { return &subState{wakeup: newWakeup(), rooms: map[string]*roomState{}} }

// join registers a stream of consumer; the returned func unregisters it. Only consumers with a stream
// open have an entry: the names in settled deliveries are not the caller's to add.
func (ss *subState) join(consumer string) func() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	r := ss.rooms[consumer]
	if r == nil {
		r = &roomState{}
		ss.rooms[consumer] = r
	}
	r.streams++
	return func() {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if r.streams--; r.streams == 0 {
			delete(ss.rooms, consumer)
		}
	}
}

// freed is how many settles freed room of consumer so far.
func (ss *subState) freed(consumer string) uint64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if r := ss.rooms[consumer]; r != nil {
		return r.freed
	}
	return 0
}

// wakeSettled tells the streams of the subscriptions of settled that room was freed for the consumers
// who held them, and, when work is set (a Nack: a delivery may be due again), that work may be due.
func (s *Server) wakeSettled(settled []*store.Delivery, work bool) {
	type key struct{ sub, consumer string }
	seen := map[key]bool{}
	subs := map[string]*subState{}
	for _, d := range settled {
		k := key{d.SubscriptionID, d.Consumer}
		if seen[k] {
			continue
		}
		seen[k] = true
		v, ok := s.consume().subs.Load(d.SubscriptionID)
		if !ok {
			continue // nobody consumes it here
		}
		ss := v.(*subState)
		subs[d.SubscriptionID] = ss
		ss.mu.Lock()
		if r := ss.rooms[d.Consumer]; r != nil {
			r.freed++
		}
		ss.mu.Unlock()
	}
	for _, ss := range subs {
		ss.signal(work)
	}
}
