package storetest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// runPush runs the push subscription, attempt, rotation and backlog tests, each on a store of its own.
func runPush(t *testing.T, newStore func(t *testing.T) DeliveryBackend) {
	for name, fn := range map[string]func(*testing.T, DeliveryBackend){
		"PushSubscriptionRoundTrip":   testPushRoundTrip,
		"PushSubscriptionRefusals":    testPushRefusals,
		"AttemptKeepsHTTPAnswer":      testAttemptHTTP,
		"AttemptExcerptRefusals":      testAttemptRefusals,
		"RotateSecret":                testRotateSecret,
		"ConcurrentRotationsLoseNone": testConcurrentRotations,
		"BacklogsByStatus":            testBacklogs,
	} {
		t.Run(name, func(t *testing.T) { t.Parallel(); fn(t, newStore(t)) })
	}
}

// sealed stands for a secret as the service seals it: bytes that are neither text nor short, which the
// store must keep exactly (NUL, invalid UTF-8, trailing zero).
func sealed(tag byte) []byte {
	b := []byte{0x00, 0xff, 0xfe, tag, '\n', 0x80}
	return append(append(b, bytes.Repeat([]byte{tag}, 40)...), 0x00)
}

func newPushSubscription(name string) *store.Subscription {
	sub := newSubscription(name, store.Filter{})
	sub.Mode = store.SubscriptionPush
	sub.Push = &store.PushConfig{Endpoint: "https://hooks.example.com/in?x=ü", Timeout: 10 * time.Second, Secret: sealed(1)}
	return sub
}

func testPushRoundTrip(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	full := newPushSubscription("push-full")
	full.Push.AllowPrivateNetwork = true
	full.Push.Timeout = 2500*time.Millisecond + 700*time.Microsecond // stored to the millisecond
	full.Push.PreviousSecret = sealed(2)
	full.Push.PreviousSecretExpireTime = time.Now().Add(time.Hour).Add(321 * time.Nanosecond)
	mustCreate(t, s, full)
	if full.Push.Timeout != 2500*time.Millisecond || full.Push.PreviousSecretExpireTime.Nanosecond()%1000 != 0 {
		t.Fatalf("create did not normalise the push configuration: %+v", full.Push)
	}
	plain := mustCreate(t, s, newPushSubscription("push-plain"))
	pull := mustCreate(t, s, newSubscription("pull", store.Filter{}))
	explicit := newSubscription("pull-explicit", store.Filter{})
	explicit.Mode = store.SubscriptionPull
	mustCreate(t, s, explicit)
	if pull.Mode != store.SubscriptionPull || pull.Push != nil {
		t.Fatalf("a subscription without a mode is not pull: %+v", pull)
	}
	want := []*store.Subscription{full, plain, pull, explicit}
	for _, w := range want {
		got, err := s.SubscriptionGet(ctx, w.ID)
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("get %+v %+v (%v)\nwant %+v %+v", got, got.Push, err, w, w.Push)
		}
	}
	if got, _ := s.SubscriptionGet(ctx, full.ID); !bytes.Equal(got.Push.Secret, sealed(1)) || !bytes.Equal(got.Push.PreviousSecret, sealed(2)) {
		t.Fatalf("secrets changed: %x %x", got.Push.Secret, got.Push.PreviousSecret)
	}
	if got, _ := s.SubscriptionGet(ctx, plain.ID); got.Push.PreviousSecret != nil || !got.Push.PreviousSecretExpireTime.IsZero() || got.Push.AllowPrivateNetwork {
		t.Fatalf("absent previous secret read back as %+v", got.Push)
	}
	page, err := s.SubscriptionList(ctx, store.SubscriptionListParams{Limit: 10})
	if err != nil || !reflect.DeepEqual(page, want) {
		t.Fatalf("list %v\nwant %v", page, want)
	}
	paused, err := s.SubscriptionSetState(ctx, full.ID, store.SubscriptionPaused, time.Now())
	if err != nil || !reflect.DeepEqual(paused.Push, full.Push) || paused.Mode != store.SubscriptionPush {
		t.Fatalf("set state lost the push configuration: %+v %v", paused, err)
	}
}

func testPushRefusals(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	for name, mutate := range map[string]func(*store.Subscription){
		"pull with push config":    func(s *store.Subscription) { s.Mode = store.SubscriptionPull },
		"no mode with push config": func(s *store.Subscription) { s.Mode = 0 },
		"push without config":      func(s *store.Subscription) { s.Push = nil },
		"unknown mode":             func(s *store.Subscription) { s.Mode = 3 },
		"negative mode":            func(s *store.Subscription) { s.Mode = -1 },
		"empty endpoint":           func(s *store.Subscription) { s.Push.Endpoint = "" },
		"NUL in endpoint":          func(s *store.Subscription) { s.Push.Endpoint = "https://a\x00b" },
		"bad UTF-8 endpoint":       func(s *store.Subscription) { s.Push.Endpoint = "https://\xff" },
		"no timeout":               func(s *store.Subscription) { s.Push.Timeout = 0 },
		"negative timeout":         func(s *store.Subscription) { s.Push.Timeout = -time.Second },
		"timeout under 1ms":        func(s *store.Subscription) { s.Push.Timeout = 999 * time.Microsecond },
		"timeout equals lease":     func(s *store.Subscription) { s.Push.Timeout = s.LeaseDuration },
		"timeout above lease":      func(s *store.Subscription) { s.Push.Timeout = s.LeaseDuration + time.Second },
		"timeout equals lease in ms": func(s *store.Subscription) {
			s.Push.Timeout = s.LeaseDuration + 500*time.Microsecond // both stored as the same milliseconds
		},
		"no secret":             func(s *store.Subscription) { s.Push.Secret = nil },
		"empty secret":          func(s *store.Subscription) { s.Push.Secret = []byte{} },
		"previous without time": func(s *store.Subscription) { s.Push.PreviousSecret = sealed(2) },
		"time without previous": func(s *store.Subscription) { s.Push.PreviousSecretExpireTime = time.Now() },
		"empty previous, a time": func(s *store.Subscription) {
			s.Push.PreviousSecret, s.Push.PreviousSecretExpireTime = []byte{}, time.Now()
		},
	} {
		sub := newPushSubscription("refused-" + name)
		mutate(sub)
		wantKind(t, name, s.SubscriptionCreate(ctx, sub), errs.KindInvalid)
		_, err := s.SubscriptionGet(ctx, sub.ID)
		wantKind(t, name+": stored anyway", err, errs.KindNotFound)
	}
	pull := newSubscription("refused-pull", store.Filter{})
	pull.Push = &store.PushConfig{Endpoint: "https://x", Timeout: time.Second, Secret: []byte{1}}
	wantKind(t, "pull (zero mode) with a push config", s.SubscriptionCreate(ctx, pull), errs.KindInvalid)
	// Just inside the bounds is accepted.
	edge := newPushSubscription("edge")
	edge.Push.Timeout, edge.Push.Secret = edge.LeaseDuration-time.Millisecond, []byte{0}
	mustCreate(t, s, edge)
}

// pushDelivery makes a push subscription with one delivery, claimed at now; it returns the lease.
func pushDelivery(t *testing.T, s DeliveryBackend, name string, now time.Time) *store.Delivery {
	t.Helper()
	sub := newPushSubscription(name)
	sub.Filter.Sources = []string{name}
	mustCreate(t, s, sub)
	mustInsert(t, s, event(name, "k", []byte("{}")))
	return claimOne(t, s, sub, "push-worker", now)
}

// testAttemptHTTP: a push attempt's HTTP status and response excerpt are kept with it by every settle
// path (ack, nack, batch), byte for byte; a pull attempt has none.
func testAttemptHTTP(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	now := clock()
	excerpt := strings.Repeat("é", store.MaxResponseExcerpt/2) // exactly the limit, in bytes
	nacked := pushDelivery(t, s, "nack", now)
	settle(t, s, store.SettleParams{ID: nacked.ID, Lease: nacked.Lease, Now: now.Add(time.Second), Nack: true, RetryAt: now,
		Error: "HTTP 503", HTTPStatus: 503, Response: "busy\n\tüber"})
	again := claimOne(t, s, &store.Subscription{ID: nacked.SubscriptionID}, "push-worker", now.Add(2*time.Second))
	settle(t, s, store.SettleParams{ID: again.ID, Lease: again.Lease, Now: now.Add(3 * time.Second), HTTPStatus: 200, Response: excerpt})
	_, as := getDelivery(t, s, nacked.ID)
	if len(as) != 2 || as[0].HTTPStatus != 503 || as[0].Response != "busy\n\tüber" || as[0].Outcome != store.AttemptNacked ||
		as[1].HTTPStatus != 200 || as[1].Response != excerpt || as[1].Outcome != store.AttemptAcked {
		t.Fatalf("attempts %+v", as)
	}
	// No answer at all (a timeout): status 0, empty excerpt.
	timedOut := pushDelivery(t, s, "timeout", now)
	batched := pushDelivery(t, s, "batch", now)
	res, err := s.DeliverySettleBatch(ctx, []store.SettleParams{
		{ID: timedOut.ID, Lease: timedOut.Lease, Now: now, Nack: true, Error: "timeout"},
		{ID: batched.ID, Lease: batched.Lease, Now: now, HTTPStatus: 204, Response: ""},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("batch: %v %+v", err, res)
	}
	if _, as := getDelivery(t, s, timedOut.ID); len(as) != 1 || as[0].HTTPStatus != 0 || as[0].Response != "" || as[0].Error != "timeout" {
		t.Fatalf("timed-out attempt %+v", as)
	}
	if _, as := getDelivery(t, s, batched.ID); len(as) != 1 || as[0].HTTPStatus != 204 || as[0].Outcome != store.AttemptAcked {
		t.Fatalf("batched attempt %+v", as)
	}
}

// testAttemptRefusals: an excerpt over the bound or not text, or a status no HTTP answer has, is refused
// by every settle path before anything is stored: the lease stays current.
func testAttemptRefusals(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	now := clock()
	d := pushDelivery(t, s, "refused", now)
	before, beforeAttempts := getDelivery(t, s, d.ID)
	for name, p := range map[string]store.SettleParams{
		"excerpt one byte over": {Response: strings.Repeat("a", store.MaxResponseExcerpt+1), HTTPStatus: 500},
		"excerpt not UTF-8":     {Response: "a\xffb", HTTPStatus: 500},
		"excerpt with NUL":      {Response: "a\x00b", HTTPStatus: 500},
		"status 1000":           {HTTPStatus: 1000},
		"negative status":       {HTTPStatus: -1},
	} {
		for _, nack := range []bool{false, true} {
			p.ID, p.Lease, p.Now, p.Nack = d.ID, d.Lease, now, nack
			_, err := s.DeliverySettle(ctx, p)
			wantKind(t, fmt.Sprintf("%s (nack %v)", name, nack), err, errs.KindInvalid)
			_, err = s.DeliverySettleBatch(ctx, []store.SettleParams{p})
			wantKind(t, fmt.Sprintf("%s in a batch (nack %v)", name, nack), err, errs.KindInvalid)
		}
	}
	after, afterAttempts := getDelivery(t, s, d.ID)
	if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(afterAttempts, beforeAttempts) {
		t.Fatalf("a refused settle changed the delivery:\n%+v\n%+v", before, after)
	}
	settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now, HTTPStatus: 999, Response: strings.Repeat("a", store.MaxResponseExcerpt)})
}

func testRotateSecret(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub := mustCreate(t, s, newPushSubscription("rotate"))
	now := sub.CreateTime.Add(time.Minute + 5*time.Nanosecond)
	until := now.Add(24*time.Hour + 7*time.Nanosecond)
	got, err := s.SubscriptionRotateSecret(ctx, sub.ID, sealed(2), until, now)
	if err != nil {
		t.Fatal(err)
	}
	want := *sub
	want.UpdateTime = now.Truncate(time.Microsecond)
	want.Push = &store.PushConfig{Endpoint: sub.Push.Endpoint, Timeout: sub.Push.Timeout, Secret: sealed(2), PreviousSecret: sealed(1),
		PreviousSecretExpireTime: until.Truncate(time.Microsecond)}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("rotated %+v %+v\nwant %+v %+v", got, got.Push, want, want.Push)
	}
	if read, err := s.SubscriptionGet(ctx, sub.ID); err != nil || !reflect.DeepEqual(read, &want) {
		t.Fatalf("read after rotation %+v %+v (%v)\nwant %+v", read, read.Push, err, want.Push)
	}
	// Without a previous-secret time the old secret is dropped at once (the previous one too).
	later := now.Add(time.Minute).Truncate(time.Microsecond)
	got, err = s.SubscriptionRotateSecret(ctx, sub.ID, sealed(3), time.Time{}, later)
	if err != nil || !bytes.Equal(got.Push.Secret, sealed(3)) || got.Push.PreviousSecret != nil || !got.Push.PreviousSecretExpireTime.IsZero() {
		t.Fatalf("rotation without previous: %+v %v", got, err)
	}
	if read, err := s.SubscriptionGet(ctx, sub.ID); err != nil || !reflect.DeepEqual(read, got) || !read.UpdateTime.Equal(later) {
		t.Fatalf("read after rotation without previous %+v %+v (%v)\nwant %+v", read, read.Push, err, got.Push)
	}

	pull := mustCreate(t, s, newSubscription("rotate-pull", store.Filter{}))
	_, err = s.SubscriptionRotateSecret(ctx, pull.ID, sealed(4), time.Time{}, later)
	wantKind(t, "rotate a pull subscription", err, errs.KindFailedPrecondition)
	for _, id := range []string{uuid.NewString(), strings.ToUpper(sub.ID), "x", ""} {
		_, err = s.SubscriptionRotateSecret(ctx, id, sealed(4), time.Time{}, later)
		wantKind(t, "rotate "+id, err, errs.KindNotFound)
	}
	_, err = s.SubscriptionRotateSecret(ctx, sub.ID, nil, time.Time{}, later)
	wantKind(t, "rotate to no secret", err, errs.KindInvalid)
	_, err = s.SubscriptionRotateSecret(ctx, sub.ID, sealed(4), later, later)
	wantKind(t, "previous secret kept until now", err, errs.KindInvalid)
	if read, _ := s.SubscriptionGet(ctx, sub.ID); !reflect.DeepEqual(read, got) {
		t.Fatalf("a refused rotation changed the subscription: %+v", read.Push)
	}
}

// testConcurrentRotations: rotations racing on one subscription run in turn, each keeping the secret
// before it as its previous one, so that the secrets form one chain from the first: a rotation that read
// a stale row would make two rotations name one predecessor and lose the secret between.
func testConcurrentRotations(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub := mustCreate(t, s, newPushSubscription("race"))
	const n = 8
	now := clock()
	results := make([]*store.Subscription, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, err := s.SubscriptionRotateSecret(ctx, sub.ID, sealed(byte(10+i)), now.Add(time.Hour), now)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = got
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	next := map[string]string{} // previous secret -> the secret that replaced it
	for _, r := range results {
		prev, cur := string(r.Push.PreviousSecret), string(r.Push.Secret)
		if other, ok := next[prev]; ok {
			t.Fatalf("two rotations replaced one secret (%x): %x and %x", prev, other, cur)
		}
		next[prev] = cur
	}
	chain, at := 0, string(sealed(1))
	for range n {
		cur, ok := next[at]
		if !ok {
			break
		}
		chain, at = chain+1, cur
	}
	final, err := s.SubscriptionGet(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if chain != n || string(final.Push.Secret) != at {
		t.Fatalf("rotations form a chain of %d of %d ending at %x; stored secret %x", chain, n, at, final.Push.Secret)
	}
}

// testBacklogs: every subscription's outstanding deliveries by status and its dead letters, the oldest
// create time among the outstanding ones only (not delivered, not dead), zeros for a subscription owed
// nothing, and a deleted subscription gone.
func testBacklogs(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	if bs, err := s.SubscriptionBacklogs(ctx); err != nil || len(bs) != 0 {
		t.Fatalf("backlogs of an empty store: %v %v", bs, err)
	}
	mixed := newSubscription("mixed", store.Filter{Sources: []string{"mixed"}})
	mixed.Retry.MaxRetries = 1
	mustCreate(t, s, mixed)
	idle := mustCreate(t, s, newSubscription("idle", store.Filter{Sources: []string{"none"}}))
	deadOnly := newSubscription("dead", store.Filter{Sources: []string{"dead"}})
	deadOnly.Retry.MaxRetries = 0
	mustCreate(t, s, deadOnly)
	// A delivery is created at its event's receive time: one millisecond apart, oldest first.
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Minute)
	for i := range 6 {
		e := event("mixed", fmt.Sprint("m", i), []byte("{}"))
		e.ReceiveTime = base.Add(time.Duration(i) * time.Millisecond)
		mustInsert(t, s, e)
	}
	mustInsert(t, s, event("dead", "d", []byte("{}")))
	now := clock()
	cs := claim(t, s, mixed.ID, "c", now, 4) // the four oldest
	if len(cs) != 4 {
		t.Fatalf("claimed %d", len(cs))
	}
	ids := make([]int64, 4)
	for i, c := range cs {
		ids[i] = c.Delivery.ID
	}
	slices.Sort(ids)
	leases := map[int64]int64{}
	for _, c := range cs {
		leases[c.Delivery.ID] = c.Delivery.Lease
	}
	// The oldest delivered, the second dead (nacked, due at once, claimed again and nacked on its last
	// attempt), the third failed, the fourth still leased; two pending.
	settle(t, s, store.SettleParams{ID: ids[0], Lease: leases[ids[0]], Now: now})
	settle(t, s, store.SettleParams{ID: ids[1], Lease: leases[ids[1]], Now: now, Nack: true, RetryAt: now.Add(-time.Hour)})
	settle(t, s, store.SettleParams{ID: ids[2], Lease: leases[ids[2]], Now: now, Nack: true, RetryAt: now.Add(time.Hour)})
	cs = claim(t, s, mixed.ID, "c", now, 1) // the one due earliest
	if len(cs) != 1 || cs[0].Delivery.ID != ids[1] {
		t.Fatalf("claimed %+v, want delivery %d", cs, ids[1])
	}
	again := cs[0].Delivery
	if d := settle(t, s, store.SettleParams{ID: again.ID, Lease: again.Lease, Now: now, Nack: true}); d.Status != store.DeliveryDeadLetter {
		t.Fatalf("not dead: %+v", d)
	}
	dead := claimOne(t, s, deadOnly, "c", now)
	settle(t, s, store.SettleParams{ID: dead.ID, Lease: dead.Lease, Now: now, Nack: true})

	// The delivered (base) and dead (base+1ms) ones are older than the oldest outstanding, the failed one.
	oldest := base.Add(2 * time.Millisecond)
	want := []store.Backlog{
		{SubscriptionID: mixed.ID, Pending: 2, Leased: 1, Failed: 1, DeadLetter: 1, OldestUndelivered: oldest},
		{SubscriptionID: idle.ID},
		{SubscriptionID: deadOnly.ID, DeadLetter: 1},
	}
	slices.SortFunc(want, func(a, b store.Backlog) int { return strings.Compare(a.SubscriptionID, b.SubscriptionID) })
	got, err := s.SubscriptionBacklogs(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("backlogs %+v (%v)\nwant %+v", got, err, want)
	}

	if err := s.SubscriptionDelete(ctx, mixed.ID); err != nil {
		t.Fatal(err)
	}
	got, err = s.SubscriptionBacklogs(ctx)
	if err != nil || len(got) != 2 || slices.ContainsFunc(got, func(b store.Backlog) bool { return b.SubscriptionID == mixed.ID }) {
		t.Fatalf("after delete: %+v %v", got, err)
	}
}
