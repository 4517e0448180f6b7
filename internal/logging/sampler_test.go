package logging

import (
	"testing"
	"time"
)

func TestSamplerCountsWhatItLeavesOut(t *testing.T) {
	s := NewSampler(1, 3)
	now := time.Unix(1000, 0)
	written := 0
	for range 100 {
		if ok, _ := s.Allow(now); ok {
			written++
		}
	}
	if written != 3 {
		t.Fatalf("wrote %d of 100 lines at one instant, want the burst of 3", written)
	}
	ok, suppressed := s.Allow(now.Add(time.Second))
	if !ok || suppressed != 97 {
		t.Fatalf("next line a second later: ok=%v suppressed=%d, want true 97", ok, suppressed)
	}
	if ok, n := s.Allow(now.Add(2 * time.Second)); !ok || n != 0 {
		t.Fatalf("count not reset: %v %d", ok, n)
	}
}
