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
