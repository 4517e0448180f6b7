package sergasctl_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
)

// auditWriter records audit events through a running service without pause, until stop, counting what
// the service acknowledged; the tests run sergasctl while it writes.
type auditWriter struct {
	acked    atomic.Int64
	writeErr atomic.Pointer[error] // the first write that failed
	progress chan int64
	stop     func() // stops writing and waits for the writer
}

func startAuditWriter(t testing.TB, client auditv1.AuditServiceClient, key string) *auditWriter {
	t.Helper()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key))
	w := &auditWriter{progress: make(chan int64, 1)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			_, err := client.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "agent-1", Action: "crm.deal.update",
				Resource: fmt.Sprintf("Deals/%d", i), Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
			if err != nil {
				if ctx.Err() == nil {
					w.writeErr.Store(&err)
				}
				return
			}
			select {
			case w.progress <- w.acked.Add(1):
			default:
			}
		}
	}()
	w.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(w.stop)
	return w
}

// waitFor waits (at most a minute) until the service has acknowledged n events.
func (w *auditWriter) waitFor(t testing.TB, n int64) {
	t.Helper()
	deadline := time.After(time.Minute)
	for w.acked.Load() < n {
		select {
		case <-w.progress:
		case <-deadline:
			t.Fatalf("the service acknowledged %d events in a minute, want %d (write error: %v)", w.acked.Load(), n, w.writeErr.Load())
		}
	}
}
