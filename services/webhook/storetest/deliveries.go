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

// DeliveryBackend is a store with the delivery store (every backend's Store).
type DeliveryBackend interface {
	store.Store
	store.DeliveryStore
}

// RunDeliveries runs the delivery store's conformance suite; newStore returns an empty, migrated store.
func RunDeliveries(t *testing.T, newStore func(t *testing.T) DeliveryBackend) {
	for name, fn := range map[string]func(*testing.T, DeliveryBackend){
		"SubscriptionRoundTrip":         testSubscriptionRoundTrip,
		"SubscriptionRefusals":          testSubscriptionRefusals,
		"SubscriptionListPages":         testSubscriptionList,
		"SubscriptionSetState":          testSubscriptionSetState,
		"FanOutByEveryFilterField":      testFanOutFilters,
		"FanOutInBatches":               testFanOutBatch,
		"UnwantedEventStoredDelivered":  testUnwanted,
		"NoHistoryForLaterSubscription": testNoHistory,
		"PausedGetsDeliveriesNoClaims":  testPaused,
		"ClaimOrderAndLimit":            testClaimOrder,
		"ClaimUnknownSubscription":      testClaimUnknown,
		"LeaseExpiryReclaims":           testLeaseExpiry,
		"StaleSettleRefused":            testStaleSettle,
		"ExpiredLeaseNotMovedAcks":      testExpiredAck,
		"NackBackoffAndRetryAt":         testNack,
		"DeadLetterAfterNacks":          testDeadByNacks,
		"DeadLetterAfterLeaseExpiries":  testDeadByExpiry,
		"EventStatusFollowsDeliveries":  testEventStatus,
		"RedriveFilters":                testRedrive,
		"DeleteCascades":                testDeleteCascade,
		"ExtendLease":                   testExtend,
		"InFlight":                      testInFlight,
		"ListFiltersAndPages":           testDeliveryList,
		"ConcurrentClaimsNeverShare":    testConcurrentClaims,
		"RacingAcksDeliverOnce":         testRacingAcks,
		"IngestRacingSubscriptions":     testIngestRacingSubscriptions,
		"ConcurrentSettlesOfOneEvent":   testConcurrentSettles,
		"SettleBatch":                   testSettleBatch,
		"SettleBatchesRace":             testSettleBatchesRace,
		"ReplayOneEvent":                testReplayOne,
		"ReplayDeliveredAndDead":        testReplayDelivered,
		"ReplayRangeFilterAndSkips":     testReplayRange,
		"ReplayRangeInPages":            testReplayPages,
		"PurgeDeliveredOnly":            testPurge,
		"PurgeRefusals":                 testPurgeRefusals,
		"ReplayPurgeRace":               testReplayPurgeRace,
	} {
		t.Run(name, func(t *testing.T) { t.Parallel(); fn(t, newStore(t)) })
	}
	runPush(t, newStore)
}

// t0 is the tests' clock: later than every event's receive time (events are received "now"), so that
// new deliveries are due at once.
func clock() time.Time { return time.Now().UTC().Truncate(time.Microsecond).Add(time.Second) }

func newSubscription(name string, f store.Filter) *store.Subscription {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &store.Subscription{
		ID: uuid.Must(uuid.NewV7()).String(), Name: name, Filter: f,
		Retry:         store.RetryPolicy{MaxRetries: 5, BackoffBase: time.Second, BackoffCap: time.Minute},
		LeaseDuration: 30 * time.Second, State: store.SubscriptionActive, CreateTime: now, UpdateTime: now,
	}
}

func mustCreate(t *testing.T, s DeliveryBackend, sub *store.Subscription) *store.Subscription {
	t.Helper()
	if err := s.SubscriptionCreate(context.Background(), sub); err != nil {
		t.Fatalf("create subscription %s: %v", sub.Name, err)
	}
	return sub
}

func mustInsert(t *testing.T, s DeliveryBackend, e *store.Event) *store.Event {
	t.Helper()
	got, dup, err := s.EventInsert(context.Background(), e)
	if err != nil || dup {
		t.Fatalf("insert: %v dup=%v", err, dup)
	}
	return got
}

func deliveriesOf(t *testing.T, s DeliveryBackend, p store.DeliveryListParams) []*store.Delivery {
	t.Helper()
	p.Limit = 1000
	ds, err := s.DeliveryList(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func claim(t *testing.T, s DeliveryBackend, sub, consumer string, now time.Time, limit int) []store.Claimed {
	t.Helper()
	claim, err := s.DeliveryClaim(context.Background(), store.ClaimParams{SubscriptionID: sub, Consumer: consumer, Now: now, Limit: limit})
	cs := claim.Claimed
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return cs
}

func eventStatus(t *testing.T, s DeliveryBackend, id string) store.Status {
	t.Helper()
	e, err := s.EventGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e.Status
}

func getDelivery(t *testing.T, s DeliveryBackend, id int64) (*store.Delivery, []store.Attempt) {
	t.Helper()
	d, as, err := s.DeliveryGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d, as
}

func wantKind(t *testing.T, what string, err error, k errs.Kind) {
	t.Helper()
	if errs.KindOf(err) != k || err == nil {
		t.Fatalf("%s: %v (kind %v), want kind %v", what, err, errs.KindOf(err), k)
	}
}

func testSubscriptionRoundTrip(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	in := newSubscription("all-fields", store.Filter{Sources: []string{"zoho", "ünïcode"}, Modules: []string{"Deals"},
		Operations: []string{"insert", "update"}, EventTypes: []string{"invoice.paid"}})
	in.Retry = store.RetryPolicy{MaxRetries: 7, BackoffBase: 1500*time.Millisecond + 999*time.Microsecond, BackoffCap: 90 * time.Second}
	in.LeaseDuration = 45*time.Second + 123*time.Microsecond
	in.CreateTime = in.CreateTime.Add(123 * time.Nanosecond)
	mustCreate(t, s, in)
	if in.Retry.BackoffBase != 1500*time.Millisecond || in.LeaseDuration != 45*time.Second || in.CreateTime.Nanosecond()%1000 != 0 {
		t.Fatalf("create did not normalise to what is stored: %+v", in)
	}
	got, err := s.SubscriptionGet(ctx, in.ID)
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("get %+v (%v)\nwant %+v", got, err, in)
	}
	none := mustCreate(t, s, newSubscription("no-filter", store.Filter{Sources: []string{}}))
	if got, err := s.SubscriptionGet(ctx, none.ID); err != nil || !reflect.DeepEqual(got, none) || got.Filter.Sources != nil {
		t.Fatalf("empty filter: %+v %v", got, err)
	}
}

func testSubscriptionRefusals(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	taken := mustCreate(t, s, newSubscription("taken", store.Filter{}))
	wantKind(t, "taken name", s.SubscriptionCreate(ctx, newSubscription("taken", store.Filter{})), errs.KindAlreadyExists)
	again := newSubscription("other", store.Filter{})
	again.ID = taken.ID
	wantKind(t, "taken id", s.SubscriptionCreate(ctx, again), errs.KindAlreadyExists)
	for name, mutate := range map[string]func(*store.Subscription){
		"upper-case id":    func(s *store.Subscription) { s.ID = "0190A6E2-7F3C-7B1E-9C4D-2F5E6A7B8C9D" },
		"not a uuid":       func(s *store.Subscription) { s.ID = "x" },
		"empty name":       func(s *store.Subscription) { s.Name = "" },
		"NUL in name":      func(s *store.Subscription) { s.Name = "a\x00b" },
		"NUL in filter":    func(s *store.Subscription) { s.Filter.Modules = []string{"a\x00"} },
		"bad UTF-8":        func(s *store.Subscription) { s.Filter.Sources = []string{"\xff"} },
		"negative retries": func(s *store.Subscription) { s.Retry.MaxRetries = -1 },
		"base above cap":   func(s *store.Subscription) { s.Retry.BackoffBase = 2 * s.Retry.BackoffCap },
		"no lease":         func(s *store.Subscription) { s.LeaseDuration = 0 },
		"state":            func(s *store.Subscription) { s.State = 3 },
		"no times":         func(s *store.Subscription) { s.CreateTime = time.Time{} },
	} {
		sub := newSubscription("refused-"+name, store.Filter{})
		mutate(sub)
		wantKind(t, name, s.SubscriptionCreate(ctx, sub), errs.KindInvalid)
	}
	// Ids in another form name nothing, on both backends (PostgreSQL's uuid would otherwise parse them).
	for _, id := range []string{uuid.NewString(), "0190A6E2-7F3C-7B1E-9C4D-2F5E6A7B8C9D", "not-a-uuid", ""} {
		_, err := s.SubscriptionGet(ctx, id)
		wantKind(t, "get "+id, err, errs.KindNotFound)
		_, err = s.SubscriptionSetState(ctx, id, store.SubscriptionPaused, time.Now())
		wantKind(t, "set state "+id, err, errs.KindNotFound)
		wantKind(t, "delete "+id, s.SubscriptionDelete(ctx, id), errs.KindNotFound)
		_, err = s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: id, Consumer: "c", Now: time.Now(), Limit: 1})
		wantKind(t, "claim "+id, err, errs.KindNotFound)
		_, err = s.DeliveryRedrive(ctx, store.RedriveParams{SubscriptionID: id, Now: time.Now()})
		wantKind(t, "redrive "+id, err, errs.KindNotFound)
		if ds, err := s.DeliveryList(ctx, store.DeliveryListParams{SubscriptionID: id, Limit: 10}); err != nil || len(ds) != 0 {
			t.Fatalf("list by %q: %v %v", id, ds, err)
		}
		if ds, err := s.DeliveryList(ctx, store.DeliveryListParams{EventID: id, Limit: 10}); err != nil || len(ds) != 0 {
			t.Fatalf("list by event %q: %v %v", id, ds, err)
		}
	}
	upper := "0190A6E2-7F3C-7B1E-9C4D-2F5E6A7B8C9D"
	if _, err := s.SubscriptionList(ctx, store.SubscriptionListParams{AfterID: upper, Limit: 1}); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("list after a non-canonical id: %v", err)
	}
	_, _, err := s.DeliveryGet(ctx, 12345)
	wantKind(t, "get unknown delivery", err, errs.KindNotFound)
	_, err = s.SubscriptionSetState(ctx, taken.ID, 7, time.Now())
	wantKind(t, "bad state", err, errs.KindInvalid)
}

func testSubscriptionList(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	var want []string
	for i := range 7 {
		want = append(want, mustCreate(t, s, newSubscription(fmt.Sprint("s", i), store.Filter{})).ID)
	}
	var got []string
	p := store.SubscriptionListParams{Limit: 3}
	for range 10 {
		page, err := s.SubscriptionList(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range page {
			got = append(got, sub.ID)
		}
		if len(page) < p.Limit {
			break
		}
		p.AfterID = page[len(page)-1].ID
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listed %v\nwant %v (creation order)", got, want)
	}
	if _, err := s.SubscriptionList(ctx, store.SubscriptionListParams{}); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("zero limit: %v", err)
	}
}

func testSubscriptionSetState(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub := mustCreate(t, s, newSubscription("states", store.Filter{}))
	at := sub.CreateTime.Add(time.Minute + 7*time.Nanosecond)
	got, err := s.SubscriptionSetState(ctx, sub.ID, store.SubscriptionPaused, at)
	if err != nil || got.State != store.SubscriptionPaused || !got.UpdateTime.Equal(at.Truncate(time.Microsecond)) || !got.CreateTime.Equal(sub.CreateTime) {
		t.Fatalf("pause: %+v %v", got, err)
	}
	if read, err := s.SubscriptionGet(ctx, sub.ID); err != nil || !reflect.DeepEqual(read, got) {
		t.Fatalf("read after pause %+v (%v)\nwant %+v", read, err, got)
	}
	if got, err := s.SubscriptionSetState(ctx, sub.ID, store.SubscriptionActive, at); err != nil || got.State != store.SubscriptionActive {
		t.Fatalf("resume: %+v %v", got, err)
	}
}

// testFanOutFilters checks every filter field alone and together, against events of each kind.
func testFanOutFilters(t *testing.T, s DeliveryBackend) {
	subs := map[string]*store.Subscription{
		"all":        mustCreate(t, s, newSubscription("all", store.Filter{})),
		"source":     mustCreate(t, s, newSubscription("source", store.Filter{Sources: []string{"github", "stripe"}})),
		"module":     mustCreate(t, s, newSubscription("module", store.Filter{Modules: []string{"Deals"}})),
		"operation":  mustCreate(t, s, newSubscription("operation", store.Filter{Operations: []string{"delete"}})),
		"event_type": mustCreate(t, s, newSubscription("event_type", store.Filter{EventTypes: []string{"invoice.paid", "push"}})),
		"zoho-deals-insert": mustCreate(t, s, newSubscription("zoho-deals-insert",
			store.Filter{Sources: []string{"zoho"}, Modules: []string{"Deals"}, Operations: []string{"insert"}})),
		"nothing": mustCreate(t, s, newSubscription("nothing", store.Filter{Sources: []string{"elsewhere"}})),
	}
	type ev struct{ source, module, operation, eventType string }
	cases := []struct {
		ev   ev
		want []string
	}{
		{ev{"zoho", "Deals", "insert", ""}, []string{"all", "module", "zoho-deals-insert"}},
		{ev{"zoho", "Deals", "delete", ""}, []string{"all", "module", "operation"}},
		{ev{"zoho", "Leads", "insert", ""}, []string{"all"}},
		{ev{"github", "", "", "push"}, []string{"all", "source", "event_type"}},
		{ev{"stripe", "", "", "charge.failed"}, []string{"all", "source"}},
		{ev{"other", "", "", "invoice.paid"}, []string{"all", "event_type"}},
		// A value that only looks like a list's text must not match it.
		{ev{"github\", \"stripe", "", "", ""}, []string{"all"}},
	}
	names := map[string]string{}
	for n, sub := range subs {
		names[sub.ID] = n
	}
	for i, c := range cases {
		e := event(c.ev.source, fmt.Sprint("f", i), []byte("{}"))
		e.Module, e.Operation, e.EventType = c.ev.module, c.ev.operation, c.ev.eventType
		stored := mustInsert(t, s, e)
		if stored.Status != store.StatusPending || eventStatus(t, s, e.ID) != store.StatusPending {
			t.Fatalf("%+v: an event with deliveries is %v", c.ev, stored.Status)
		}
		var got []string
		for _, d := range deliveriesOf(t, s, store.DeliveryListParams{EventID: e.ID}) {
			got = append(got, names[d.SubscriptionID])
			if d.Status != store.DeliveryPending || d.EventID != e.ID || d.Source != e.Source || d.AttemptCount != 0 || d.Lease != 0 ||
				!d.AvailableTime.Equal(e.ReceiveTime) || !d.EventReceiveTime.Equal(e.ReceiveTime) || d.Consumer != "" || !d.LeaseStartTime.IsZero() {
				t.Fatalf("%+v: new delivery %+v", c.ev, d)
			}
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("event %+v went to %v, want %v", c.ev, got, c.want)
		}
	}
}

// testFanOutBatch: a batch fans out every event it stores, answers a duplicate with the first one
// stored (which got its deliveries once), and marks the unwanted ones delivered in what it returns.
func testFanOutBatch(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	gh := mustCreate(t, s, newSubscription("github", store.Filter{Sources: []string{"github"}}))
	earlier := mustInsert(t, s, event("github", "dup", []byte("{}")))
	var es []*store.Event
	for i := range 20 {
		es = append(es, event([]string{"github", "zoho"}[i%2], fmt.Sprint("b", i), []byte("{}")))
	}
	es = append(es, event("github", "dup", []byte("{}")), event("github", "b0", []byte("{}")))
	got, err := s.EventInsertBatch(ctx, es)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		want := store.StatusPending
		if es[i].Source == "zoho" {
			want = store.StatusDelivered
		}
		if r.Event.Status != want || eventStatus(t, s, r.Event.ID) != want {
			t.Errorf("event %d (%s): returned %v, stored %v, want %v", i, es[i].Source, r.Event.Status, eventStatus(t, s, r.Event.ID), want)
		}
		n := len(deliveriesOf(t, s, store.DeliveryListParams{EventID: r.Event.ID}))
		if (es[i].Source == "github") != (n == 1) || n > 1 {
			t.Errorf("event %d (%s) has %d deliveries", i, es[i].Source, n)
		}
	}
	if !got[20].Duplicate || got[20].Event.ID != earlier.ID || !got[21].Duplicate || got[21].Event.ID != got[0].Event.ID {
		t.Fatalf("duplicates answered %+v %+v", got[20], got[21])
	}
	if n := len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: gh.ID})); n != 11 {
		t.Fatalf("subscription has %d deliveries, want 11", n)
	}
}

func testUnwanted(t *testing.T, s DeliveryBackend) {
	// No subscription at all, then one that wants another source.
	e := mustInsert(t, s, event("zoho", "none", []byte("{}")))
	if e.Status != store.StatusDelivered || eventStatus(t, s, e.ID) != store.StatusDelivered {
		t.Fatalf("an event no subscription wants is %v, stored %v", e.Status, eventStatus(t, s, e.ID))
	}
	mustCreate(t, s, newSubscription("github", store.Filter{Sources: []string{"github"}}))
	e = mustInsert(t, s, event("zoho", "other", []byte("{}")))
	if e.Status != store.StatusDelivered || eventStatus(t, s, e.ID) != store.StatusDelivered {
		t.Fatalf("an event no subscription wants is %v", e.Status)
	}
	if got, _, err := s.EventInsert(context.Background(), event("zoho", "other", nil)); err != nil || got.Status != store.StatusDelivered {
		t.Fatalf("its duplicate: %+v %v", got, err)
	}
}

func testNoHistory(t *testing.T, s DeliveryBackend) {
	before := mustInsert(t, s, event("zoho", "before", []byte("{}")))
	sub := mustCreate(t, s, newSubscription("later", store.Filter{}))
	after := mustInsert(t, s, event("zoho", "after", []byte("{}")))
	ds := deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID})
	if len(ds) != 1 || ds[0].EventID != after.ID {
		t.Fatalf("deliveries %+v, want only the event after the subscription", ds)
	}
	if eventStatus(t, s, before.ID) != store.StatusDelivered {
		t.Fatal("the earlier event changed")
	}
}

func testPaused(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub := mustCreate(t, s, newSubscription("paused", store.Filter{}))
	if _, err := s.SubscriptionSetState(ctx, sub.ID, store.SubscriptionPaused, time.Now()); err != nil {
		t.Fatal(err)
	}
	e := mustInsert(t, s, event("zoho", "p", []byte("{}")))
	if len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID})) != 1 || e.Status != store.StatusPending {
		t.Fatal("a paused subscription got no delivery")
	}
	if cs := claim(t, s, sub.ID, "c", clock(), 10); len(cs) != 0 {
		t.Fatalf("claimed %d from a paused subscription", len(cs))
	}
	if _, err := s.SubscriptionSetState(ctx, sub.ID, store.SubscriptionActive, time.Now()); err != nil {
		t.Fatal(err)
	}
	if cs := claim(t, s, sub.ID, "c", clock(), 10); len(cs) != 1 || cs[0].Event.ID != e.ID {
		t.Fatalf("resumed: claimed %+v", cs)
	}
}

func testClaimUnknown(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	_, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: uuid.Must(uuid.NewV7()).String(), Consumer: "c", Now: clock(), Limit: 1})
	wantKind(t, "claim unknown", err, errs.KindNotFound)
	sub := mustCreate(t, s, newSubscription("s", store.Filter{}))
	_, err = s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: sub.ID, Consumer: "c", Now: clock()})
	wantKind(t, "claim zero", err, errs.KindInvalid)
}

// testClaimOrder: oldest available first, at most the limit, the event with payload and headers, the
// delivery leased to the consumer; nothing not yet due.
func testClaimOrder(t *testing.T, s DeliveryBackend) {
	sub := mustCreate(t, s, newSubscription("order", store.Filter{}))
	other := mustCreate(t, s, newSubscription("other", store.Filter{Sources: []string{"nobody"}}))
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	var ids []string
	// Inserted newest first: the claim must order by available time (the receive time), not by id.
	for i := 4; i >= 0; i-- {
		e := event("zoho", fmt.Sprint("o", i), []byte(fmt.Sprint(`{"i":`, i, `}`)))
		e.ReceiveTime = base.Add(time.Duration(i) * time.Minute)
		mustInsert(t, s, e)
		ids = append([]string{e.ID}, ids...)
	}
	future := event("zoho", "future", []byte("{}"))
	future.ReceiveTime = base.Add(3 * time.Hour)
	mustInsert(t, s, future)
	now := base.Add(time.Hour)
	if cs := claim(t, s, other.ID, "c1", now, 10); len(cs) != 0 {
		t.Fatalf("another subscription's deliveries claimed: %d", len(cs))
	}
	first := claim(t, s, sub.ID, "c1", now, 3)
	second := claim(t, s, sub.ID, "c2", now, 10)
	var got []string
	for _, c := range append(first, second...) {
		got = append(got, c.Event.ID)
	}
	if len(first) != 3 || !reflect.DeepEqual(got, ids) {
		t.Fatalf("claimed %v (first %d)\nwant %v", got, len(first), ids)
	}
	c := first[0]
	d := c.Delivery
	if d.Status != store.DeliveryLeased || d.Consumer != "c1" || d.Lease != 1 || d.AttemptCount != 1 || !d.LeaseStartTime.Equal(now) ||
		!d.AvailableTime.Equal(now.Add(sub.LeaseDuration)) || !d.UpdateTime.Equal(now) {
		t.Fatalf("claimed delivery %+v", d)
	}
	if string(c.Event.Payload) != `{"i":0}` || len(c.Event.Headers) != 2 || c.Event.Source != "zoho" {
		t.Fatalf("claimed event %+v", c.Event)
	}
	if stored, _ := getDelivery(t, s, d.ID); !reflect.DeepEqual(stored, d) {
		t.Fatalf("stored %+v\nreturned %+v", stored, d)
	}
	if cs := claim(t, s, sub.ID, "c3", now, 10); len(cs) != 0 {
		t.Fatalf("leased deliveries claimed again within the lease: %d", len(cs))
	}
}

// WantEverything gives s a subscription that wants every event, so that the events a test stores stay
// pending (an event no subscription wants is stored as delivered). A store without the delivery store
// keeps events pending anyway.
func WantEverything(t testing.TB, s store.Store) {
	t.Helper()
	if ds, ok := s.(store.DeliveryStore); ok {
		if err := ds.SubscriptionCreate(context.Background(), newSubscription("everything", store.Filter{})); err != nil {
			t.Fatal(err)
		}
	}
}
