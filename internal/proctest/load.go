package proctest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sergas/core/internal/testutil"
)

// maxCalls bounds each sender of KillDuringLoad: far more than a load reaches before its kill.
const maxCalls = 100_000

// KillDuringLoad kills p with SIGKILL in the middle of a load: senders goroutines each call
// send(sender, n) for n = 0, 1, … until it returns an error, and once the calls have acknowledged
// after writes in all (send returns how many each acknowledged), p is killed. It returns when every
// sender has stopped, each on the error the kill caused. It fails the test when the load does not
// reach after within a minute, when a sender stopped on an error before the kill (the load must not
// fail on its own) or ran out of calls, or when senders still run a minute after the kill.
func (p *Proc) KillDuringLoad(t testing.TB, senders, after int, send func(sender, n int) (acked int, err error)) {
	t.Helper()
	var (
		count   atomic.Int64
		killed  atomic.Bool // set before the signal, so an error seen while it is false is not the kill's
		mu      sync.Mutex
		early   []error
		ranOut  atomic.Int64
		stopped atomic.Int64
		wg      sync.WaitGroup
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stopped.Add(1)
			for n := range maxCalls {
				acked, err := send(s, n)
				if err != nil {
					if !killed.Load() {
						mu.Lock()
						early = append(early, err)
						mu.Unlock()
					}
					return
				}
				count.Add(int64(acked))
			}
			ranOut.Add(1)
		}()
	}
	// Waits no longer once every sender has stopped: the load cannot reach after then.
	testutil.Wait(time.Minute, func() bool { return count.Load() >= int64(after) || stopped.Load() == int64(senders) })
	loaded := count.Load() >= int64(after)
	killed.Store(true)
	p.Kill(t)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("senders still running a minute after the kill of %s", p.name)
	}
	switch {
	case len(early) > 0:
		t.Fatalf("%d senders stopped before the kill: %v", len(early), errors.Join(early...))
	case !loaded:
		t.Fatalf("%d writes acknowledged within a minute, want %d before the kill\n%s", count.Load(), after, p.Log())
	case ranOut.Load() > 0:
		t.Fatalf("%d senders made %d calls before the kill: raise maxCalls", ranOut.Load(), maxCalls)
	}
}
