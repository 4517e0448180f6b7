package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// paced holds calls from many callers to the offered rate in all: 40 calls at 200/s from 8 callers take
// at least the 200 ms their slots span, and every call is made.
func TestPacedHoldsTheRateAcrossCallers(t *testing.T) {
	var calls atomic.Int64
	fn := paced(func(context.Context) error { calls.Add(1); return nil }, 200)
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if err := fn(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took < 195*time.Millisecond || calls.Load() != 40 {
		t.Fatalf("%d calls in %s, want 40 in at least 200 ms", calls.Load(), took)
	}
}

// A paced call waiting for its slot returns when its context ends.
func TestPacedCallEndsWithItsContext(t *testing.T) {
	fn := paced(func(context.Context) error { return nil }, 0.001) // one slot every 1000 s
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fn(ctx); err == nil {
		t.Fatal("a call whose context had ended waited for its slot and succeeded")
	}
}
