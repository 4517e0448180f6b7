package processtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/dbtest"
)

// TestKillDuringAppendsLosesNoAcknowledgedEvent: sergas-audit killed with SIGKILL while concurrent
// callers append (RecordEvent through the group committer, and RecordEvents) loses nothing it
// acknowledged: after a restart on the same database every acknowledged event is stored with the
// sequence and hash it was acknowledged with, the chain verifies from 1 to the head, and appends go on
// from the head. Calls cut off by the kill are sent again with their idempotency keys, as a client
// that does not know their outcome would: each ends up stored exactly once.
func TestKillDuringAppendsLosesNoAcknowledgedEvent(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			c := dbtest.Config(t, d)
			key, keys := writerKey(t)
			ctx, cancel := context.WithTimeout(withKey(context.Background(), key), 3*time.Minute)
			defer cancel()

			p := startAudit(t, keys, c)
			client := auditClient(t, p)
			var (
				mu     sync.Mutex
				acks   []acked
				cutOff []*auditv1.RecordEventsRequest // calls whose outcome the kill hid
			)
			// Killed once appends are well under way.
			p.KillDuringLoad(t, writers, 500, func(w, n int) (int, error) {
				name := fmt.Sprintf("w%d", w)
				req := &auditv1.RecordEventsRequest{Events: []*auditv1.RecordEventRequest{request(name, n)}}
				var got []*auditv1.Event
				var err error
				if n%10 == 9 {
					for j := 1; j < 10; j++ {
						req.Events = append(req.Events, request(name, 1000_000+10*n+j))
					}
					var resp *auditv1.RecordEventsResponse
					if resp, err = client.RecordEvents(ctx, req); err == nil {
						for _, r := range resp.GetResults() {
							got = append(got, r.GetEvent())
						}
					}
				} else {
					var resp *auditv1.RecordEventResponse
					if resp, err = client.RecordEvent(ctx, req.Events[0]); err == nil {
						got = append(got, resp.GetEvent())
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					cutOff = append(cutOff, req)
					return 0, err
				}
				for _, e := range got {
					acks = append(acks, ackOf(e))
				}
				return len(got), nil
			})
			if len(cutOff) != writers {
				t.Fatalf("%d writers saw the kill, want all %d", len(cutOff), writers)
			}

			// Restart on the same database: everything acknowledged is there, the chain verifies.
			p = startAudit(t, keys, c)
			client = auditClient(t, p)
			stored := storedChain(t, c)
			checkAcked(t, stored, acks)
			t.Logf("%d events acknowledged before the kill, %d stored", len(acks), len(stored))

			// The calls the kill cut off, sent again with the same keys: stored exactly once each.
			sent := len(stored)
			for _, req := range cutOff {
				resp, err := client.RecordEvents(ctx, req)
				if err != nil {
					t.Fatalf("resending a cut-off call: %v", err)
				}
				for _, r := range resp.GetResults() {
					if !r.GetDuplicate() {
						sent++
					}
					acks = append(acks, ackOf(r.GetEvent()))
				}
			}
			p.Stop(t)
			stored = storedChain(t, c)
			checkAcked(t, stored, acks)
			if len(stored) != sent {
				t.Fatalf("%d events stored, want %d (no key stored twice)", len(stored), sent)
			}
			keysSeen := map[string]bool{}
			for _, e := range stored {
				if keysSeen[e.IdempotencyKey] {
					t.Fatalf("key %s stored twice", e.IdempotencyKey)
				}
				keysSeen[e.IdempotencyKey] = true
			}
		})
	}
}
