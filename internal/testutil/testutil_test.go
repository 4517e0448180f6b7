package testutil

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLogBufferTakesConcurrentWriters(t *testing.T) {
	var b LogBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 8*100*2 {
		t.Fatalf("%d bytes written, want %d", n, 1600)
	}
}

func TestWaitReturnsWhenTheConditionHolds(t *testing.T) {
	var n atomic.Int64
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	if _, ok := Wait(5*time.Second, func() bool { return n.Load() == 3 }); !ok {
		t.Fatal("condition that became true was reported as timed out")
	}
	if elapsed, ok := Wait(30*time.Millisecond, func() bool { return false }); ok || elapsed < 30*time.Millisecond {
		t.Fatalf("a false condition: ok=%v after %v", ok, elapsed)
	}
}
