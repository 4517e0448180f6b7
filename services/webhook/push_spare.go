package webhook

import (
	"slices"
	"sync"

	"github.com/sergas/core/services/webhook/store"
)

// A worker claims for the pusher's other workers too: as many more deliveries as their free request
// slots hold, which it leaves in spare for them to take before they claim themselves. With the default
// batches of 10 and three workers racing for a steady stream, each claimed what had arrived since the
// last claim (5.4 deliveries a claim, one claim per 5 deliveries on PostgreSQL at ~3,000/s); a claim
// and its settle cost a transaction each whatever their size, so that claims of up to the whole
// pusher's room take fewer transactions for the same deliveries. Spare deliveries are leased to the
// pusher like the rest and sent like any claimed delivery (a request that outlives its lease is refused
// at settle and the delivery sent again, as in a batch); a stopping worker sends what is left as its
// last batches. Those of a subscription that is no longer an active push target (paused, deleted, turned
// to pull) are let go: their leases end and the store hands them out again once it is active.
type pushSpare struct {
	mu   sync.Mutex
	byID map[string]*spareList // by subscription id
	n    int                   // deliveries held, over every subscription
	// added wakes idle workers when deliveries are left for them.
	added *wakeup
}

type spareList struct {
	t  *pushTarget
	cs []store.Claimed
}

func newPushSpare() *pushSpare { return &pushSpare{byID: map[string]*spareList{}, added: newWakeup()} }

// put leaves cs (leased for t) for the other workers and wakes those waiting.
func (s *pushSpare) put(t *pushTarget, cs []store.Claimed) {
	if len(cs) == 0 {
		return
	}
	s.mu.Lock()
	l := s.byID[t.sub.ID]
	if l == nil {
		l = &spareList{}
		s.byID[t.sub.ID] = l
	}
	l.t, l.cs = t, append(l.cs, cs...)
	s.n += len(cs)
	s.mu.Unlock()
	s.added.notify()
}

// take returns up to n spare deliveries of subscription id, oldest first.
func (s *pushSpare) take(id string, n int) []store.Claimed {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byID[id]
	if l == nil {
		return nil
	}
	k := min(n, len(l.cs))
	out := l.cs[:k:k]
	l.cs = l.cs[k:]
	s.n -= k
	if len(l.cs) == 0 {
		delete(s.byID, id)
	}
	return out
}

// keep lets go of the spare deliveries of subscriptions not in targets.
func (s *pushSpare) keep(targets []*pushTarget) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, l := range s.byID {
		if !slices.ContainsFunc(targets, func(t *pushTarget) bool { return t.sub.ID == id }) {
			s.n -= len(l.cs)
			delete(s.byID, id)
		}
	}
}

// held is how many spare deliveries there are.
func (s *pushSpare) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// any returns up to n spare deliveries of one subscription and its target (nil when there are none).
func (s *pushSpare) any(n int) (*pushTarget, []store.Claimed) {
	s.mu.Lock()
	var id string
	var t *pushTarget
	for k, l := range s.byID {
		id, t = k, l.t
		break
	}
	s.mu.Unlock()
	if t == nil {
		return nil, nil
	}
	return t, s.take(id, n)
}
