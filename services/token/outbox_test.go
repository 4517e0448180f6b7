package token_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials/insecure"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auditclient"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/zohotest"
)

// Two replicas on one database share the outbox: each event reaches the audit service once, not once
// per replica (the idempotency key would hide duplicates in the audit log, so the stand-in counts every
// delivery).
func TestOutboxEventIsSentOnceAcrossReplicas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		const events = 300
		z := zohotest.New(t)
		cfg := config_(t, dbc, z, nil)
		st := openStore(t, dbc)
		queueEvents(t, st, "org-1", events, nil)
		audit := newFakeAudit()
		audit.delay = time.Millisecond
		for range 2 {
			openRunning(t, cfg, quiet(), audit)
		}
		close(audit.ready) // both replicas start on the backlog at the same moment
		waitFor(t, 60*time.Second, "every event delivered and the outbox empty", func() bool {
			n, _, _, _ := audit.counts()
			left, err := st.OutboxList(context.Background(), 10)
			return n == events && err == nil && len(left) == 0
		})
		if n, calls, _, dup := audit.counts(); calls != events || len(dup) > 0 {
			t.Fatalf("%d deliveries of %d events; sent more than once: %v", calls, n, dup)
		}
	})
}

// An event the audit service refuses for good (here an actor over its 256-character limit, as a long
// JWT subject would make, and a payload that cannot be decoded) is parked with the reason, counted and
// logged once, and the events behind it are delivered.
func TestRefusedOutboxEntryIsParkedAndTheRestGoOn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		st := openStore(t, dbc)
		long := strings.Repeat("x", 300)
		queueEvents(t, st, "org-1", 5, func(i int) string {
			if i == 1 {
				return long
			}
			return ""
		})
		// A payload no one can decode, behind the others.
		queueEntries(t, st, "org-2", []store.OutboxEntry{{IdempotencyKey: "garbage", Payload: []byte{0xff, 0xff, 0xff}, CreateTime: time.Now().UTC()}})

		addr := freeAddr(t)
		auditClient := startAudit(t, addr)
		client := auditclient.NewClient("")
		if err := client.Connect(addr, insecure.NewCredentials()); err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		parked0 := parkedTotal(t)
		var logs testutil.LogBuffer
		svc := openRunning(t, config_(t, dbc, z, nil), slog.New(slog.NewTextHandler(&logs, nil)), client)

		waitFor(t, 30*time.Second, "the four acceptable events in the audit log", func() bool {
			list, err := auditClient.ListEvents(context.Background(), &auditv1.ListEventsRequest{Resource: "zoho/org-1", PageSize: 100})
			return err == nil && len(list.GetEvents()) == 4
		})
		waitFor(t, 30*time.Second, "only the two refused entries left, parked", func() bool {
			left, err := st.OutboxList(context.Background(), 10)
			return err == nil && len(left) == 2 && !left[0].ParkTime.IsZero() && !left[1].ParkTime.IsZero()
		})
		left, _ := st.OutboxList(context.Background(), 10)
		if !strings.HasPrefix(left[0].ParkReason, "InvalidArgument: ") || !strings.Contains(left[0].ParkReason, "actor") ||
			!strings.HasPrefix(left[1].ParkReason, "DataLoss: ") {
			t.Fatalf("park reasons: %q, %q", left[0].ParkReason, left[1].ParkReason)
		}
		// More rounds go by: the parked entries are neither sent again nor logged again.
		rounds := svc.OutboxRounds()
		waitFor(t, 30*time.Second, "two more delivery rounds", func() bool { return svc.OutboxRounds() >= rounds+2 })
		if n := strings.Count(logs.String(), "parked it"); n != 2 {
			t.Fatalf("%d log lines about parking, want 2:\n%s", n, logs.String())
		}
		if got := parkedTotal(t) - parked0; got < 2 {
			t.Fatalf("audit_outbox_parked_total{service=\"token\"} grew by %v, want 2", got)
		}
	})
}

// parkedTotal sums the token service's audit_outbox_parked_total over its codes.
func parkedTotal(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "audit_outbox_parked_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == "token" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
