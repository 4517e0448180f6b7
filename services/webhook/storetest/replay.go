package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

func replayOf(t *testing.T, s DeliveryBackend, p store.ReplayParams) store.ReplayResult {
	t.Helper()
	r, err := s.DeliveryReplay(context.Background(), p)
	if err != nil {
		t.Fatalf("replay %+v: %v", p, err)
	}
	return r
}

// An event stored before its subscription (so without a delivery of it) is replayed to it by id,
// whatever the filter and even while the subscription is paused: a pending delivery, available now,
// with the event's source and receive time, and the event pending until it is acked. A second replay
// while the delivery waits skips it. Unknown or malformed ids are not found.
func testReplayOne(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	e := mustInsert(t, s, event("zoho", "early", []byte("{}")))
	sub := mustCreate(t, s, newSubscription("later", store.Filter{Sources: []string{"github"}}))
	if _, err := s.SubscriptionSetState(ctx, sub.ID, store.SubscriptionPaused, time.Now()); err != nil {
		t.Fatal(err)
	}
	now := clock()
	if r := replayOf(t, s, store.ReplayParams{SubscriptionID: sub.ID, EventID: e.ID, Now: now, Actor: "apikey:ops"}); r != (store.ReplayResult{Replayed: 1}) {
		t.Fatalf("replay: %+v", r)
	}
	ds := deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID})
	if len(ds) != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	d := ds[0]
	if d.EventID != e.ID || d.Status != store.DeliveryPending || d.AttemptCount != 0 || !d.AvailableTime.Equal(now) || d.Lease != 0 ||
		d.Source != "zoho" || !d.EventReceiveTime.Equal(e.ReceiveTime) || !d.CreateTime.Equal(now) {
		t.Fatalf("replayed delivery %+v (event received %v, now %v)", d, e.ReceiveTime, now)
	}
	if st := eventStatus(t, s, e.ID); st != store.StatusPending {
		t.Fatalf("event is %v after replay", st)
	}
	if r := replayOf(t, s, store.ReplayParams{SubscriptionID: sub.ID, EventID: e.ID, Now: now}); r != (store.ReplayResult{Skipped: 1}) {
		t.Fatalf("replay of a pending delivery: %+v", r)
	}
	if _, err := s.SubscriptionSetState(ctx, sub.ID, store.SubscriptionActive, time.Now()); err != nil {
		t.Fatal(err)
	}
	got := claimOne(t, s, sub, "c", now)
	settle(t, s, store.SettleParams{ID: got.ID, Lease: got.Lease, Now: now})
	if st := eventStatus(t, s, e.ID); st != store.StatusDelivered {
		t.Fatalf("event is %v after the ack", st)
	}

	for _, c := range []struct {
		name  string
		p     store.ReplayParams
		kind  errs.Kind
		isSub bool
	}{
		{"unknown event", store.ReplayParams{SubscriptionID: sub.ID, EventID: uuid.Must(uuid.NewV7()).String()}, errs.KindNotFound, false},
		{"upper-case event", store.ReplayParams{SubscriptionID: sub.ID, EventID: "A" + e.ID[1:]}, errs.KindNotFound, false},
		{"unknown subscription", store.ReplayParams{SubscriptionID: uuid.Must(uuid.NewV7()).String(), EventID: e.ID}, errs.KindNotFound, true},
		{"unknown subscription, range", store.ReplayParams{SubscriptionID: uuid.Must(uuid.NewV7()).String(), From: now.Add(-time.Hour)}, errs.KindNotFound, true},
		{"malformed subscription", store.ReplayParams{SubscriptionID: "nope", EventID: e.ID}, errs.KindNotFound, true},
		{"empty range", store.ReplayParams{SubscriptionID: sub.ID, From: now, To: now}, errs.KindInvalid, false},
	} {
		c.p.Now = now
		_, err := s.DeliveryReplay(ctx, c.p)
		wantKind(t, c.name, err, c.kind)
	}
}

// A delivered delivery replayed is pending again with a fresh attempt budget; its attempt history is
// kept and the next hand-out continues its numbering; the event follows (pending, then delivered). A
// dead letter is replayed the same way.
func testReplayDelivered(t *testing.T, s DeliveryBackend) {
	sub, e := oneDelivery(t, s, func(sub *store.Subscription) { sub.Retry.MaxRetries = 0 })
	now := clock()
	first := claimOne(t, s, sub, "c1", now)
	settle(t, s, store.SettleParams{ID: first.ID, Lease: first.Lease, Now: now})
	later := now.Add(time.Minute)
	if r := replayOf(t, s, store.ReplayParams{SubscriptionID: sub.ID, EventID: e.ID, Now: later}); r != (store.ReplayResult{Replayed: 1}) {
		t.Fatalf("replay: %+v", r)
	}
	d, as := getDelivery(t, s, first.ID)
	if d.Status != store.DeliveryPending || d.AttemptCount != 0 || !d.AvailableTime.Equal(later) || d.Lease != 1 || len(as) != 1 {
		t.Fatalf("replayed %+v attempts %+v", d, as)
	}
	if st := eventStatus(t, s, e.ID); st != store.StatusPending {
		t.Fatalf("event %v after replay", st)
	}
	again := claimOne(t, s, sub, "c2", later)
	if again.ID != first.ID || again.Lease != 2 || again.AttemptCount != 1 {
		t.Fatalf("handed out again: %+v", again)
	}
	// Out of attempts (no retries): the nack makes it a dead letter, which a replay brings back too.
	settle(t, s, store.SettleParams{ID: again.ID, Lease: again.Lease, Now: later, Nack: true, Error: "boom"})
	if st := eventStatus(t, s, e.ID); st != store.StatusDeadLetter {
		t.Fatalf("event %v after the dead letter", st)
	}
	if r := replayOf(t, s, store.ReplayParams{SubscriptionID: sub.ID, EventID: e.ID, Now: later}); r != (store.ReplayResult{Replayed: 1}) {
		t.Fatalf("replay of a dead letter: %+v", r)
	}
	third := claimOne(t, s, sub, "c3", later)
	settle(t, s, store.SettleParams{ID: third.ID, Lease: third.Lease, Now: later})
	_, as = getDelivery(t, s, first.ID)
	var numbers []int32
	for _, a := range as {
		numbers = append(numbers, a.Number)
	}
	if !slices.Equal(numbers, []int32{1, 2, 3}) || as[1].Error != "boom" || eventStatus(t, s, e.ID) != store.StatusDelivered {
		t.Fatalf("attempts %+v, event %v", as, eventStatus(t, s, e.ID))
	}
}

// A range replay gives the subscription the events of [From, To) its filter matches, including those
// stored before it existed; deliveries still pending, leased or failed are skipped; events outside the
// range or the filter, and other subscriptions' deliveries, are left alone.
func testReplayRange(t *testing.T, s DeliveryBackend) {
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	ev := map[int]*store.Event{}
	ins := func(i int, src string) {
		e := event(src, fmt.Sprint("range-", i), []byte("{}"))
		e.ReceiveTime = at(i)
		ev[i] = mustInsert(t, s, e)
	}
	// Minutes 0-3 come before the subscriptions: no deliveries.
	for i, src := range []string{"github", "zoho", "github", "zoho"} {
		ins(i, src)
	}
	sub := newSubscription("github-only", store.Filter{Sources: []string{"github"}})
	sub.Retry.MaxRetries = 1
	mustCreate(t, s, sub)
	other := mustCreate(t, s, newSubscription("all", store.Filter{}))
	for i := 4; i < 12; i++ {
		ins(i, map[bool]string{true: "zoho", false: "github"}[i == 10])
	}
	// The subscription's deliveries, by minute: 4 delivered, 5 dead, 6 leased, 7 failed, 8 delivered,
	// 9 and 11 pending. Claims go by available time (the receive time, or a nack's RetryAt).
	now := clock()
	cs := claim(t, s, sub.ID, "c", now, 5)
	if len(cs) != 5 || cs[0].Event.ID != ev[4].ID || cs[4].Event.ID != ev[8].ID {
		t.Fatalf("claimed %d", len(cs))
	}
	ack := func(c store.Claimed) {
		settle(t, s, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now})
	}
	nack := func(c store.Claimed, retryAt time.Time) {
		settle(t, s, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now, Nack: true, RetryAt: retryAt, Error: "no"})
	}
	ack(cs[0])
	nack(cs[1], at(0)) // due before every other delivery: the next claim takes it
	nack(cs[3], now.Add(time.Hour))
	ack(cs[4])
	again := claim(t, s, sub.ID, "c", now, 1)
	if len(again) != 1 || again[0].Event.ID != ev[5].ID {
		t.Fatalf("second claim %+v", again)
	}
	nack(again[0], time.Time{}) // its last attempt: a dead letter
	before := map[string]*store.Delivery{}
	for _, d := range deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID}) {
		before[d.EventID] = d
	}
	want := map[int]store.DeliveryStatus{4: store.DeliveryDelivered, 5: store.DeliveryDeadLetter, 6: store.DeliveryLeased,
		7: store.DeliveryFailed, 8: store.DeliveryDelivered, 9: store.DeliveryPending, 11: store.DeliveryPending}
	for i, st := range want {
		if d := before[ev[i].ID]; d == nil || d.Status != st {
			t.Fatalf("minute %d: %+v, want %v", i, d, st)
		}
	}

	later := now.Add(time.Minute)
	r := replayOf(t, s, store.ReplayParams{SubscriptionID: sub.ID, From: at(2), To: at(10), Now: later})
	if r != (store.ReplayResult{Replayed: 4, Skipped: 3}) { // 2, 4, 5, 8; 6, 7, 9
		t.Fatalf("replay: %+v", r)
	}
	after := map[string]*store.Delivery{}
	for _, d := range deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID}) {
		after[d.EventID] = d
	}
	if len(after) != 8 { // 4-9, 11, and now 2
		t.Fatalf("%d deliveries after replay", len(after))
	}
	for _, i := range []int{2, 4, 5, 8} {
		d := after[ev[i].ID]
		if d == nil || d.Status != store.DeliveryPending || d.AttemptCount != 0 || !d.AvailableTime.Equal(later) {
			t.Fatalf("minute %d after replay: %+v", i, d)
		}
		if st := eventStatus(t, s, ev[i].ID); st != store.StatusPending {
			t.Fatalf("minute %d: event %v", i, st)
		}
	}
	for _, i := range []int{6, 7, 9, 11} {
		if d := after[ev[i].ID]; !reflect.DeepEqual(d, before[ev[i].ID]) {
			t.Fatalf("minute %d changed: %+v, was %+v", i, d, before[ev[i].ID])
		}
	}
	for _, i := range []int{0, 1, 3} {
		if st := eventStatus(t, s, ev[i].ID); st != store.StatusDelivered {
			t.Fatalf("minute %d outside the range or filter: event %v", i, st)
		}
	}
	for _, d := range deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: other.ID}) {
		if d.Status != store.DeliveryPending || d.AttemptCount != 0 || d.AvailableTime.Equal(later) {
			t.Fatalf("the other subscription's delivery changed: %+v", d)
		}
	}
	if n := len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: other.ID})); n != 8 {
		t.Fatalf("the other subscription has %d deliveries", n)
	}
	// Unbounded end: everything from minute 11 on.
	if r := replayOf(t, s, store.ReplayParams{SubscriptionID: sub.ID, From: at(11), Now: later}); r != (store.ReplayResult{Skipped: 1}) {
		t.Fatalf("open-ended replay: %+v", r)
	}
}

// A range larger than a page is replayed page by page, in receive order and then seq order among
// events received at the same time (all of them here), each event once; a second replay skips them
// all; a context that has ended replays nothing.
func testReplayPages(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	n := store.ReplayBatch + 37
	received := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	for done := 0; done < n; {
		var es []*store.Event
		for i := 0; i < 100 && done < n; i, done = i+1, done+1 {
			e := event("zoho", fmt.Sprint("page-", done), []byte("{}"))
			e.ReceiveTime = received
			es = append(es, e)
		}
		if _, err := s.EventInsertBatch(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	sub := mustCreate(t, s, newSubscription("pages", store.Filter{}))
	now := clock()
	p := store.ReplayParams{SubscriptionID: sub.ID, From: received, To: received.Add(time.Microsecond), Now: now}
	if r := replayOf(t, s, p); r != (store.ReplayResult{Replayed: int64(n)}) {
		t.Fatalf("replay: %+v", r)
	}
	if got := deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID}); len(got) != n {
		t.Fatalf("%d deliveries, want %d", len(got), n)
	}
	if r := replayOf(t, s, p); r != (store.ReplayResult{Skipped: int64(n)}) {
		t.Fatalf("second replay: %+v", r)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.DeliveryReplay(done, p); err == nil {
		t.Fatal("a replay ran on a context that had ended")
	}
}
