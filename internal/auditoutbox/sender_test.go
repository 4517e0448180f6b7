package auditoutbox

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/testutil"
)

// memStore is an in-memory Store.
type memStore struct {
	mu      sync.Mutex
	entries []Entry
}

func (m *memStore) OutboxClaim(_ context.Context, p ClaimParams) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Entry
	for i := range m.entries {
		e := &m.entries[i]
		if len(out) < p.Limit && e.ParkTime.IsZero() && (e.ClaimOwner == "" || !e.ClaimExpireTime.After(p.Now)) {
			e.ClaimOwner, e.ClaimExpireTime = p.Owner, p.Until
			out = append(out, *e)
		}
	}
	return out, nil
}

func (m *memStore) OutboxRelease(_ context.Context, owner string, ids []int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.entries {
		if e := &m.entries[i]; slices.Contains(ids, e.ID) && e.ClaimOwner == owner {
			e.ClaimOwner, e.ClaimExpireTime = "", time.Time{}
		}
	}
	return nil
}

func (m *memStore) OutboxPark(_ context.Context, id int64, reason string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.entries {
		if e := &m.entries[i]; e.ID == id {
			e.ParkTime, e.ParkReason, e.ClaimOwner, e.ClaimExpireTime = now, reason, "", time.Time{}
		}
	}
	return nil
}

func (m *memStore) OutboxDelete(_ context.Context, ids []int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = slices.DeleteFunc(m.entries, func(e Entry) bool { return slices.Contains(ids, e.ID) })
	return nil
}

func (m *memStore) snapshot() []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.entries)
}

// fakeRecorder answers each action with the error set for it.
type fakeRecorder struct {
	mu     sync.Mutex
	errs   map[string]error
	got    []*auditv1.RecordEventRequest
	ready  chan struct{}
	called atomic.Int64
}

func (f *fakeRecorder) Ready() <-chan struct{} { return f.ready }

func (f *fakeRecorder) Record(_ context.Context, req *auditv1.RecordEventRequest) error {
	f.called.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[req.GetAction()]; err != nil {
		return err
	}
	f.got = append(f.got, req)
	return nil
}

func (f *fakeRecorder) setErr(action string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[action] = err
}

func (f *fakeRecorder) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.got {
		out = append(out, r.GetAction()+"/"+r.GetIdempotencyKey())
	}
	return out
}

func entry(t *testing.T, id int64, action string) Entry {
	t.Helper()
	e, err := NewEntry("test", &auditv1.RecordEventRequest{Action: action}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.ID = id
	return e
}

// One round, entry by entry: sent ones are deleted (with their idempotency key set on the request),
// ones refused for good are parked with a bounded, clean reason and counted, a payload that cannot be
// decoded is parked as DataLoss, and the first failure that a retry may cure gives the rest back.
func TestRound(t *testing.T) {
	st := &memStore{}
	st.entries = []Entry{entry(t, 1, "ok.1"), entry(t, 2, "refused"), {ID: 3, IdempotencyKey: "bad", Payload: []byte{0xff, 0xff}},
		entry(t, 4, "ok.4"), entry(t, 5, "down"), entry(t, 6, "ok.6")}
	rec := &fakeRecorder{errs: map[string]error{
		"refused": status.Error(codes.InvalidArgument, "actor \x00 "+strings.Repeat("é", 400)),
		"down":    status.Error(codes.Unavailable, "connection refused"),
	}, ready: make(chan struct{})}
	s := &Sender{Store: st, Audit: rec, Service: "unit", Owner: "me"}
	s.defaults()
	parked0 := promtest.ToFloat64(parked.WithLabelValues("unit", "InvalidArgument"))
	lost0 := promtest.ToFloat64(parked.WithLabelValues("unit", "DataLoss"))

	key1, key4 := st.entries[0].IdempotencyKey, st.entries[3].IdempotencyKey
	claimed, failed := s.round(context.Background())
	if claimed != 6 || !failed {
		t.Fatalf("round: claimed %d failed %v", claimed, failed)
	}
	if got := rec.actions(); !slices.Equal(got, []string{"ok.1/" + key1, "ok.4/" + key4}) {
		t.Fatalf("sent %v", got)
	}
	left := st.snapshot()
	if ids := func() (out []int64) {
		for _, e := range left {
			out = append(out, e.ID)
		}
		return
	}(); !slices.Equal(ids, []int64{2, 3, 5, 6}) {
		t.Fatalf("left %v", ids)
	}
	if r := left[0].ParkReason; !strings.HasPrefix(r, "InvalidArgument: actor ? ") || len(r) > maxReasonBytes || strings.ContainsRune(r, 0) ||
		!strings.HasSuffix(r, "é") {
		t.Fatalf("park reason %q", r)
	}
	if !strings.HasPrefix(left[1].ParkReason, "DataLoss: ") || left[1].ParkTime.IsZero() {
		t.Fatalf("undecodable entry %+v", left[1])
	}
	for _, e := range left[2:] {
		if !e.ParkTime.IsZero() || e.ClaimOwner != "" {
			t.Fatalf("entry given back %+v", e)
		}
	}
	if rec.called.Load() != 4 {
		t.Fatalf("%d deliveries tried, want 4 (none after the outage)", rec.called.Load())
	}
	if d := promtest.ToFloat64(parked.WithLabelValues("unit", "InvalidArgument")) - parked0; d != 1 {
		t.Fatalf("parked InvalidArgument +%v", d)
	}
	if d := promtest.ToFloat64(parked.WithLabelValues("unit", "DataLoss")) - lost0; d != 1 {
		t.Fatalf("parked DataLoss +%v", d)
	}

	// The audit service is back: the next round sends the rest, and never the parked ones again.
	rec.setErr("down", nil)
	if claimed, failed := s.round(context.Background()); claimed != 2 || failed {
		t.Fatalf("second round: claimed %d failed %v", claimed, failed)
	}
	if left := st.snapshot(); len(left) != 2 || left[0].ID != 2 || left[1].ID != 3 {
		t.Fatalf("left after the second round %+v", left)
	}
}

// Run sends what is queued, backs off while deliveries fail, starts a round at
// once when woken, and ends with its context.
func TestRun(t *testing.T) {
	st := &memStore{entries: []Entry{entry(t, 1, "down")}}
	rec := &fakeRecorder{errs: map[string]error{"down": status.Error(codes.Unavailable, "down")}, ready: make(chan struct{})}
	wake := make(chan struct{}, 1)
	var rounds atomic.Uint64
	s := &Sender{Store: st, Audit: rec, Service: "unit", Owner: "me", Wake: wake, Rounds: &rounds,
		Idle: time.Hour, MaxBackoff: time.Hour} // rounds come only when woken
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()

	close(rec.ready)
	testutil.Eventually(t, 10*time.Second, "the first round", func() bool { return rounds.Load() >= 1 })
	if len(st.snapshot()) != 1 {
		t.Fatal("a failed delivery lost its entry")
	}
	rec.setErr("down", nil)
	testutil.Eventually(t, 10*time.Second, "the woken round", func() bool {
		select {
		case wake <- struct{}{}:
		default:
		}
		return len(st.snapshot()) == 0
	})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end with its context")
	}
}

// NewEntry fixes the idempotency key and keeps it out of the payload (the sender sets it from the
// column).
func TestNewEntry(t *testing.T) {
	a, err := NewEntry("svc", &auditv1.RecordEventRequest{Action: "x"}, time.Unix(5, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewEntry("svc", &auditv1.RecordEventRequest{Action: "x"}, time.Unix(5, 0))
	if !strings.HasPrefix(a.IdempotencyKey, "svc-") || a.IdempotencyKey == b.IdempotencyKey || !a.CreateTime.Equal(time.Unix(5, 0)) {
		t.Fatalf("entries %+v %+v", a, b)
	}
	var req auditv1.RecordEventRequest
	if err := proto.Unmarshal(a.Payload, &req); err != nil || req.GetIdempotencyKey() != "" || req.GetAction() != "x" {
		t.Fatalf("payload %v, %v", &req, err)
	}
}
