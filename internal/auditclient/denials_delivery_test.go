package auditclient

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/testutil"
)

// runDenials connects a denial log to the fake at addr and runs it; stop cancels it and waits.
func runDenials(t *testing.T, addr string, interval time.Duration) (d *Denials, stop func()) {
	t.Helper()
	client := NewClient("")
	if err := client.Connect(addr, insecure.NewCredentials()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	d = NewDenials(slog.New(slog.NewTextHandler(io.Discard, nil)), client, DenialConfig{Interval: interval})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the denial log did not stop")
		}
	}
	t.Cleanup(stop)
	return d, stop
}

func knownDenial(actor string) auth.Denial {
	return auth.Denial{Actor: actor, Method: "/sergas.token.v1.TokenService/DeleteConnection", Reason: auth.ReasonScope,
		Peer: "192.0.2.7", Time: time.Now(), Known: true}
}

func actors(f *fakeAudit) map[string]int {
	out := map[string]int{}
	for _, e := range f.snapshot() {
		out[e.GetActor()]++
	}
	return out
}

// (a) A JWT principal with a long issuer and subject, or one carrying control characters, is recorded
// under its audit form (Actor) instead of being refused by the audit service and dropped.
func TestDenialsRecordLongAndUnsafeActors(t *testing.T) {
	fake, addr := startFake(t)
	d, _ := runDenials(t, addr, time.Hour)
	long := "jwt:https://idp.example/" + strings.Repeat("tenant/", 30) + "#" + strings.Repeat("s", 80)
	unsafe := "mtls:CN=ops\n\u202eforged"
	d.Denied(knownDenial(long))
	d.Denied(knownDenial(unsafe))
	testutil.Eventually(t, 10*time.Second, "both refusals recorded", func() bool {
		got := actors(fake)
		return got[Actor(long)] == 1 && got[Actor(unsafe)] == 1
	})
}

// (c) Unavailable and ResourceExhausted from the audit service do not drop a genuine refusal: it is
// retried with backoff, and the refusals queued behind it follow in order.
func TestDenialsRetryWhileTheAuditServiceIsUnavailable(t *testing.T) {
	fake, addr := startFakeReplying(t, func(_ context.Context, n int) error {
		switch n {
		case 1, 2:
			return status.Error(codes.Unavailable, "restarting")
		case 3:
			return status.Error(codes.ResourceExhausted, "shedding load")
		}
		return nil
	})
	d, _ := runDenials(t, addr, time.Hour)
	d.Denied(knownDenial("apikey:first"))
	d.Denied(knownDenial("apikey:second"))
	testutil.Eventually(t, 10*time.Second, "both refusals recorded after the outage", func() bool {
		return len(fake.snapshot()) == 2
	})
	if ev := fake.snapshot(); ev[0].GetActor() != "apikey:first" || ev[1].GetActor() != "apikey:second" {
		t.Fatalf("order: %s, %s", ev[0].GetActor(), ev[1].GetActor())
	}
}

// (b) Genuine refusals still queued when the service stops are sent within the shutdown budget; when
// the audit service cannot take them in that time, they are counted as dropped, not lost silently.
func TestDenialsDeliverTheQueueAtShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	fake, addr := startFakeReplying(t, func(ctx context.Context, n int) error {
		if n == 1 {
			started <- struct{}{}
			<-release // the first delivery hangs until the stop has begun
		}
		return nil
	})
	d, stop := runDenials(t, addr, time.Hour)
	const queued = 30
	for i := range queued {
		d.Denied(knownDenial(fmt.Sprintf("apikey:k%d", i)))
	}
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	close(release)
	<-stopped
	got := actors(fake)
	for i := range queued {
		if got[fmt.Sprintf("apikey:k%d", i)] == 0 {
			t.Errorf("queued refusal %d was not delivered at shutdown (%d of %d were)", i, len(got), queued)
		}
	}
}

func TestDenialsCountWhatTheShutdownBudgetLeaves(t *testing.T) {
	started := make(chan struct{}, 1)
	_, addr := startFakeReplying(t, func(ctx context.Context, n int) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done() // never answers
		return ctx.Err()
	})
	before := promtest.ToFloat64(dropped.WithLabelValues("shutdown")) + promtest.ToFloat64(dropped.WithLabelValues("send_failed"))
	d, stop := runDenials(t, addr, time.Hour)
	const queued = 20
	for i := range queued {
		d.Denied(knownDenial(fmt.Sprintf("apikey:k%d", i)))
	}
	<-started
	stop()
	after := promtest.ToFloat64(dropped.WithLabelValues("shutdown")) + promtest.ToFloat64(dropped.WithLabelValues("send_failed"))
	if after-before != queued {
		t.Fatalf("%v refusals counted as dropped, want all %d", after-before, queued)
	}
}

// (d) Anonymous refusals are summed per address bucket: an IPv6 client rotating through its /64 is one
// group, not one per address.
func TestDenialsSumAnIPv6Slash64AsOneAddress(t *testing.T) {
	fake, addr := startFake(t)
	d, _ := runDenials(t, addr, 50*time.Millisecond)
	for i := range 100 {
		d.Denied(auth.Denial{Actor: "anonymous", Method: "/m", Reason: auth.ReasonMissing, Peer: fmt.Sprintf("2001:db8:1:2::%x", i+1), Time: time.Now()})
	}
	var events []*auditv1.RecordEventRequest
	testutil.Eventually(t, 10*time.Second, "the summed-up refusals", func() bool {
		events = fake.snapshot()
		total := 0.0
		for _, e := range events {
			total += e.GetMetadata().GetFields()["count"].GetNumberValue()
		}
		return total == 100
	})
	for _, e := range events {
		if p := e.GetMetadata().GetFields()["peer"].GetStringValue(); p != "2001:db8:1:2::/64" {
			t.Errorf("summed under %q", p)
		}
	}
	if len(events) > 2 {
		t.Errorf("%d events for one /64; want one per interval", len(events))
	}
}
