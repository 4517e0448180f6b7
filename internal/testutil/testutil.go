// Package testutil holds the small helpers that tests across the repository kept writing again: a log
// destination safe for concurrent writers, and a wait for a condition with a deadline (tests wait for
// what they expect to happen, never for a fixed time).
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// LogBuffer collects a logger's output while goroutines write to it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// PollInterval is how often Eventually checks its condition.
const PollInterval = 10 * time.Millisecond

// Eventually returns once cond holds, checking it every PollInterval, and fails the test (naming what
// it waited for) when cond still does not hold after within. It returns how long the wait took.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	elapsed, ok := Wait(within, cond)
	if !ok {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
	return elapsed
}

// Wait is Eventually that reports a timeout instead of failing, for a caller that must clean up (stop
// its load) before it fails.
func Wait(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return time.Since(start), false
		}
		time.Sleep(PollInterval) // bounded by the deadline
	}
	return time.Since(start), true
}
