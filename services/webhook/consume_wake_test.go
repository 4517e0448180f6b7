package webhook

import "testing"

// A settle wakes the consumers of its own subscription only; a subscription no consumer waits on (an
// ack id's is the caller's to choose) adds no entry; Ingest's wake-up reaches everyone. Notify closes
// the channels before it returns, so what was not woken by then never will be by that call.
func TestSubscriptionWakeups(t *testing.T) {
	s := &Server{consumer: newConsumeState()}
	st := s.consume()
	a, b, all := st.subWake("a").wait(), st.subWake("b").wait(), st.wake.wait()
	s.wakeSubscription("a")
	select {
	case <-a:
	default:
		t.Fatal("a's consumer was not woken")
	}
	select {
	case <-b:
		t.Fatal("b's consumer was woken by a's news")
	case <-all:
		t.Fatal("a's news woke everyone")
	default:
	}
	s.wakeSubscription("forged")
	if _, ok := st.subs.Load("forged"); ok {
		t.Fatal("waking an unknown subscription added an entry")
	}
	s.wakeConsumers()
	select {
	case <-all:
	default:
		t.Fatal("the global wake-up woke no one")
	}
	if next := st.subWake("a").wait(); next == a {
		t.Fatal("a woken channel was handed out again")
	}
}
