package ratelimit

import (
	"testing"
	"time"
)

func TestKeyedBuckets(t *testing.T) {
	l := New(10, 3)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("4th request: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("another key shares a's bucket")
	}
	if ok, _ := l.Allow("a", now.Add(wait)); !ok {
		t.Fatal("refused after waiting the advertised delay")
	}
	if ok, _ := New(0, 0).Allow("x", now); !ok {
		t.Fatal("unlimited limiter refused")
	}
}

func TestIdleBucketsAreForgotten(t *testing.T) {
	l := New(1, 1)
	now := time.Unix(1000, 0)
	for i := range 100 {
		l.Allow(string(rune('a'+i%26))+string(rune('a'+i/26)), now)
	}
	l.Allow("late", now.Add(11*time.Minute))
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets kept after the idle period, want 1", n)
	}
}

func TestBlockedPeeksWithoutSpending(t *testing.T) {
	k := New(1, 2)
	now := time.Unix(1000, 0)
	if b, _ := k.Blocked("a", now); b {
		t.Fatal("unseen key blocked")
	}
	for i := range 2 {
		if ok, _ := k.Allow("a", now); !ok {
			t.Fatalf("call %d within the burst refused", i)
		}
	}
	b, wait := k.Blocked("a", now)
	if !b || wait <= 0 || wait > time.Second {
		t.Fatalf("empty bucket: blocked=%v wait=%v", b, wait)
	}
	for range 5 { // peeking spends nothing
		k.Blocked("a", now)
	}
	if b, _ := k.Blocked("a", now.Add(time.Second)); b {
		t.Fatal("still blocked after the bucket refilled one token")
	}
	if ok, _ := k.Allow("a", now.Add(time.Second)); !ok {
		t.Fatal("the refilled token was spent by peeking")
	}
}
