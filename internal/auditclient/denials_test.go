package auditclient

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/internal/validate"
)

// fakeAudit records every event it is sent. Like the audit service it refuses an actor that is not a
// valid label; reply, when set, answers call n (from 1) before that.
type fakeAudit struct {
	auditv1.UnimplementedAuditServiceServer
	mu     sync.Mutex
	calls  int
	reply  func(ctx context.Context, n int) error
	events []*auditv1.RecordEventRequest
}

func (f *fakeAudit) RecordEvent(ctx context.Context, r *auditv1.RecordEventRequest) (*auditv1.RecordEventResponse, error) {
	f.mu.Lock()
	f.calls++
	n, reply := f.calls, f.reply
	f.mu.Unlock()
	if reply != nil {
		if err := reply(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := validate.Label("actor", r.GetActor(), MaxActorBytes, true); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	f.mu.Lock()
	f.events = append(f.events, r)
	f.mu.Unlock()
	return &auditv1.RecordEventResponse{}, nil
}

func (f *fakeAudit) snapshot() []*auditv1.RecordEventRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*auditv1.RecordEventRequest(nil), f.events...)
}

func startFake(t *testing.T) (*fakeAudit, string) {
	t.Helper()
	return startFakeReplying(t, nil)
}

func startFakeReplying(t *testing.T, reply func(ctx context.Context, n int) error) (*fakeAudit, string) {
	t.Helper()
	f := &fakeAudit{reply: reply}
	srv := grpc.NewServer()
	auditv1.RegisterAuditServiceServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

// The flood: thousands of anonymous refusals from a few addresses arrive together with a
// handful of refusals of a genuine key. Every genuine refusal is recorded on its own; the anonymous ones
// become one event per address and reason whose counts add up to every refusal.
func TestDenialsKeepEveryKnownRefusalAndSumUpTheRest(t *testing.T) {
	fake, addr := startFake(t)
	d, _ := runDenials(t, addr, 50*time.Millisecond)

	now := time.Now()
	const flood, known = 10000, 25
	peers := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"}
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range flood / len(peers) {
				d.Denied(auth.Denial{Actor: "anonymous", Method: "/sergas.token.v1.TokenService/GetAccessToken", Reason: auth.ReasonMissing, Peer: p, Time: now})
			}
		}()
	}
	for range known {
		d.Denied(auth.Denial{Actor: "apikey:reader", Method: "/sergas.token.v1.TokenService/DeleteConnection", Reason: auth.ReasonScope, Peer: "192.0.2.7", Time: now, Known: true})
	}
	wg.Wait()

	var gotKnown int
	var counted map[string]float64
	if _, met := testutil.Wait(10*time.Second, func() bool {
		gotKnown, counted = 0, map[string]float64{}
		for _, e := range fake.snapshot() {
			m := e.GetMetadata().GetFields()
			switch {
			case e.GetActor() == "apikey:reader" && m["reason"].GetStringValue() == "insufficient_scope":
				gotKnown++
				if _, summed := m["count"]; summed {
					t.Fatalf("a known refusal was summed up: %v", e)
				}
			case e.GetActor() == "anonymous":
				counted[m["peer"].GetStringValue()] += m["count"].GetNumberValue()
			}
		}
		total := 0.0
		for _, n := range counted {
			total += n
		}
		return gotKnown == known && total == flood && len(counted) == len(peers)
	}); !met {
		t.Fatalf("after 10 s: %d of %d known refusals, anonymous counts %v (want %d in all)", gotKnown, known, counted, flood)
	}
	if n := len(fake.snapshot()); n > known+len(peers)*4 {
		t.Fatalf("%d events sent; the flood should take about one per address and interval", n)
	}
}
