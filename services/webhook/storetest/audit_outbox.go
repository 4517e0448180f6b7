package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auditoutbox"
	"github.com/sergas/core/services/webhook/store"
)

// OutboxBackend is a store and the delivery driver under it: the suite runs the delivery algorithms over
// a driver whose transactions roll back, to show that an audit record commits only with its change.
type OutboxBackend struct {
	Store  DeliveryBackend
	Driver store.DeliveryDriver
}

// RunAuditOutbox runs the audit outbox's conformance suite; newBackend returns an empty, migrated store.
func RunAuditOutbox(t *testing.T, newBackend func(t *testing.T) OutboxBackend) {
	for name, fn := range map[string]func(*testing.T, OutboxBackend){
		"NackOutOfAttemptsQueuesOne":    testOutboxNack,
		"BatchNackQueuesOnePerDead":     testOutboxBatchNack,
		"ExpiredLeaseQueuesOne":         testOutboxExpiredLease,
		"RedriveQueuesOne":              testOutboxRedrive,
		"RolledBackChangeQueuesNothing": testOutboxRollback,
		"ClaimReleaseParkDelete":        testOutboxClaim,
		"ConcurrentClaimsNeverShare":    testOutboxConcurrentClaims,
	} {
		t.Run(name, func(t *testing.T) { t.Parallel(); fn(t, newBackend(t)) })
	}
}

// outboxEvent is an entry decoded as the sender will send it.
type outboxEvent struct {
	auditoutbox.Entry
	req *auditv1.RecordEventRequest
}

func outbox(t *testing.T, s DeliveryBackend) []outboxEvent {
	t.Helper()
	os, ok := s.(store.OutboxStore)
	if !ok {
		t.Fatal("store keeps no audit outbox")
	}
	es, err := os.OutboxList(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []outboxEvent
	for _, e := range es {
		var req auditv1.RecordEventRequest
		if err := proto.Unmarshal(e.Payload, &req); err != nil {
			t.Fatalf("entry %d: %v", e.ID, err)
		}
		out = append(out, outboxEvent{e, &req})
	}
	return out
}

// wantDeadLetterEvent checks that e records d's dead letter, by the service itself.
func wantDeadLetterEvent(t *testing.T, e outboxEvent, d *store.Delivery, lastError string, now time.Time) {
	t.Helper()
	r := e.req
	if r.GetAction() != store.AuditDeadLettered || r.GetResource() != "subscriptions/"+d.SubscriptionID ||
		r.GetActor() != "sergas-webhook/"+store.Replica() || r.GetActorType() != auditv1.ActorType_ACTOR_TYPE_SERVICE ||
		r.GetOutcome() != auditv1.Outcome_OUTCOME_SUCCESS || r.GetSourceService() != "sergas-webhook" ||
		!r.GetOccurTime().AsTime().Equal(now) || r.GetIdempotencyKey() != "" {
		t.Fatalf("dead letter event: %v", r)
	}
	m := r.GetMetadata().AsMap()
	if m["delivery_id"] != float64(d.ID) || m["event_id"] != d.EventID || m["source"] != d.Source ||
		m["attempts"] != float64(d.AttemptCount) || m["last_error"] != lastError {
		t.Fatalf("dead letter metadata %v for %+v", m, d)
	}
	if !strings.HasPrefix(e.IdempotencyKey, "webhook-") || len(e.IdempotencyKey) < len("webhook-")+32 ||
		!e.CreateTime.Equal(now) || !e.ParkTime.IsZero() || e.ClaimOwner != "" {
		t.Fatalf("entry %+v", e.Entry)
	}
}

func testOutboxNack(t *testing.T, b OutboxBackend) {
	s := b.Store
	sub, _ := oneDelivery(t, s, func(s *store.Subscription) { s.Retry = store.RetryPolicy{MaxRetries: 1} })
	now := clock()
	d := claimOne(t, s, sub, "c", now)
	if got := settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now, Nack: true, Error: "first"}); got.Status != store.DeliveryFailed {
		t.Fatalf("first nack: %+v", got)
	}
	if es := outbox(t, s); len(es) != 0 {
		t.Fatalf("a nack with attempts left queued %d audit events", len(es))
	}
	now = now.Add(time.Hour)
	d = claimOne(t, s, sub, "c", now)
	dead := settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now, Nack: true, Error: "HTTP 500"})
	if dead.Status != store.DeliveryDeadLetter {
		t.Fatalf("last nack: %+v", dead)
	}
	es := outbox(t, s)
	if len(es) != 1 {
		t.Fatalf("%d audit events for one dead letter", len(es))
	}
	wantDeadLetterEvent(t, es[0], dead, "HTTP 500", now)
	// An ack queues nothing.
	e2 := mustInsert(t, s, event("zoho", "acked", []byte("{}")))
	d2 := claimOne(t, s, sub, "c", now)
	if d2.EventID != e2.ID {
		t.Fatalf("claimed %+v", d2)
	}
	settle(t, s, store.SettleParams{ID: d2.ID, Lease: d2.Lease, Now: now})
	if es := outbox(t, s); len(es) != 1 {
		t.Fatalf("%d audit events after an ack, want the one dead letter", len(es))
	}
}

func testOutboxBatchNack(t *testing.T, b OutboxBackend) {
	s := b.Store
	bs, ok := s.(BatchSettler)
	if !ok {
		t.Fatal("store does not settle batches")
	}
	sub := mustCreate(t, s, func() *store.Subscription {
		sub := newSubscription("batch", store.Filter{})
		sub.Retry.MaxRetries = 0
		return sub
	}())
	for i := range 3 {
		mustInsert(t, s, event("zoho", fmt.Sprint("ob", i), []byte("{}")))
	}
	now := clock()
	cs := claim(t, s, sub.ID, "c", now, 10)
	if len(cs) != 3 {
		t.Fatalf("claimed %d", len(cs))
	}
	res, err := bs.DeliverySettleBatch(context.Background(), []store.SettleParams{
		{ID: cs[0].Delivery.ID, Lease: cs[0].Delivery.Lease, Now: now, Nack: true, Error: "e0"},
		{ID: cs[1].Delivery.ID, Lease: cs[1].Delivery.Lease, Now: now},
		{ID: cs[2].Delivery.ID, Lease: cs[2].Delivery.Lease, Now: now, Nack: true, Error: "e2"},
		{ID: cs[2].Delivery.ID, Lease: cs[2].Delivery.Lease, Now: now, Nack: true, Error: "again"}, // refused: settled above
	})
	if err != nil || res[0].Err != nil || res[2].Err != nil || res[3].Err == nil {
		t.Fatalf("batch: %+v, %v", res, err)
	}
	es := outbox(t, s)
	if len(es) != 2 {
		t.Fatalf("%d audit events for two dead letters in one batch", len(es))
	}
	slices.SortFunc(es, func(a, b outboxEvent) int {
		return int(a.req.GetMetadata().AsMap()["delivery_id"].(float64) - b.req.GetMetadata().AsMap()["delivery_id"].(float64))
	})
	wantDeadLetterEvent(t, es[0], res[0].Delivery, "e0", now)
	wantDeadLetterEvent(t, es[1], res[2].Delivery, "e2", now)
	if es[0].IdempotencyKey == es[1].IdempotencyKey {
		t.Fatal("two events share an idempotency key")
	}
}

func testOutboxExpiredLease(t *testing.T, b OutboxBackend) {
	s := b.Store
	sub, _ := oneDelivery(t, s, func(s *store.Subscription) { s.Retry.MaxRetries = 0 })
	now := clock()
	claimOne(t, s, sub, "c1", now)
	if es := outbox(t, s); len(es) != 0 {
		t.Fatalf("a claim queued %d audit events", len(es))
	}
	now = now.Add(sub.LeaseDuration)
	res, err := s.DeliveryClaim(context.Background(), store.ClaimParams{SubscriptionID: sub.ID, Consumer: "c2", Now: now, Limit: 10})
	if err != nil || len(res.Claimed) != 0 || len(res.DeadLettered) != 1 {
		t.Fatalf("claim after the last lease expired: %+v, %v", res, err)
	}
	dead, _ := getDelivery(t, s, res.DeadLettered[0].ID)
	es := outbox(t, s)
	if len(es) != 1 {
		t.Fatalf("%d audit events for one dead letter", len(es))
	}
	wantDeadLetterEvent(t, es[0], dead, store.LeaseExpiredError, now)
	// Claiming again finds nothing more to record.
	claim(t, s, sub.ID, "c3", now.Add(time.Hour), 10)
	if es := outbox(t, s); len(es) != 1 {
		t.Fatalf("%d audit events after another claim", len(es))
	}
}

func testOutboxRedrive(t *testing.T, b OutboxBackend) {
	s := b.Store
	ctx := context.Background()
	sub := newSubscription("redrive", store.Filter{})
	sub.Retry.MaxRetries = 0
	mustCreate(t, s, sub)
	for i := range 3 {
		mustInsert(t, s, event([]string{"zoho", "github", "github"}[i], fmt.Sprint("or", i), []byte("{}")))
	}
	now := clock()
	killAll(t, s, sub, now, func(*store.Event) string { return "timeout" })
	before := len(outbox(t, s))
	if before != 3 {
		t.Fatalf("%d audit events for three dead letters", before)
	}
	// A redrive that finds nothing changes nothing and records nothing.
	if n, err := s.DeliveryRedrive(ctx, store.RedriveParams{SubscriptionID: sub.ID, Source: "stripe", Now: now, Actor: "ops@example.com"}); err != nil || n != 0 {
		t.Fatalf("empty redrive: %d, %v", n, err)
	}
	from := now.Add(-time.Hour)
	n, err := s.DeliveryRedrive(ctx, store.RedriveParams{SubscriptionID: sub.ID, Source: "github", From: from, ErrorContains: "time",
		Now: now, Actor: "ops@example.com"})
	if err != nil || n != 2 {
		t.Fatalf("redrive: %d, %v", n, err)
	}
	es := outbox(t, s)
	if len(es) != before+1 {
		t.Fatalf("%d audit events after a redrive, want %d", len(es), before+1)
	}
	r := es[len(es)-1].req
	m := r.GetMetadata().AsMap()
	if r.GetAction() != store.AuditRedriven || r.GetResource() != "subscriptions/"+sub.ID || r.GetActor() != "ops@example.com" ||
		r.GetActorType() != auditv1.ActorType_ACTOR_TYPE_UNSPECIFIED || r.GetSourceService() != "sergas-webhook" ||
		!r.GetOccurTime().AsTime().Equal(now) || m["redriven"] != float64(2) || m["source"] != "github" ||
		m["error_contains"] != "time" || m["start_time"] != from.Format(time.RFC3339Nano) || m["end_time"] != nil {
		t.Fatalf("redrive event %v", r)
	}
}

// rollbackDriver runs each delivery transaction to its end and then fails it, so that nothing commits.
type rollbackDriver struct{ store.DeliveryDriver }

var errRollback = errors.New("rolled back by the test")

func (d rollbackDriver) DeliveryTx(ctx context.Context, fn func(store.DeliveryTx) error) error {
	return d.DeliveryDriver.DeliveryTx(ctx, func(tx store.DeliveryTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRollback
	})
}

// testOutboxRollback: each change that queues an audit record (a nack out of attempts, alone or in a
// batch; a claim of an expired last lease; a redrive), when its transaction rolls back, leaves neither
// the change nor the record.
func testOutboxRollback(t *testing.T, b OutboxBackend) {
	s, ctx := b.Store, context.Background()
	failing := store.Deliveries{D: rollbackDriver{b.Driver}}
	sub, _ := oneDelivery(t, s, func(s *store.Subscription) { s.Retry.MaxRetries = 0 })
	now := clock()
	d := claimOne(t, s, sub, "c", now)
	nack := store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now, Nack: true, Error: "x"}
	if _, err := failing.DeliverySettle(ctx, nack); !errors.Is(err, errRollback) {
		t.Fatalf("nack: %v", err)
	}
	if _, err := failing.DeliverySettleBatch(ctx, []store.SettleParams{nack}); !errors.Is(err, errRollback) {
		t.Fatalf("batch nack: %v", err)
	}
	expired := now.Add(sub.LeaseDuration)
	if _, err := failing.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: sub.ID, Consumer: "c2", Now: expired, Limit: 10}); !errors.Is(err, errRollback) {
		t.Fatalf("claim: %v", err)
	}
	if got, _ := getDelivery(t, s, d.ID); got.Status != store.DeliveryLeased || got.Lease != d.Lease {
		t.Fatalf("rolled back changes stayed: %+v", got)
	}
	if es := outbox(t, s); len(es) != 0 {
		t.Fatalf("rolled back dead letters queued %d audit events", len(es))
	}
	// The same changes committed queue their records: the rollbacks above are what kept them out.
	settle(t, s, nack)
	if es := outbox(t, s); len(es) != 1 {
		t.Fatalf("%d audit events for the committed dead letter", len(es))
	}
	if _, err := failing.DeliveryRedrive(ctx, store.RedriveParams{SubscriptionID: sub.ID, Now: now, Actor: "ops"}); !errors.Is(err, errRollback) {
		t.Fatalf("redrive: %v", err)
	}
	if got, _ := getDelivery(t, s, d.ID); got.Status != store.DeliveryDeadLetter {
		t.Fatalf("rolled back redrive stayed: %+v", got)
	}
	if es := outbox(t, s); len(es) != 1 {
		t.Fatalf("a rolled back redrive queued an audit event: %d", len(es))
	}
}

// queueEntries puts n entries in the outbox through a delivery transaction.
func queueEntries(t *testing.T, b OutboxBackend, n int) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	es := make([]auditoutbox.Entry, n)
	for i := range es {
		es[i] = auditoutbox.Entry{IdempotencyKey: fmt.Sprintf("k-%d-%d", now.UnixNano(), i), Payload: []byte{byte(i)}, CreateTime: now}
	}
	if err := b.Driver.DeliveryTx(context.Background(), func(tx store.DeliveryTx) error { return tx.OutboxInsert(context.Background(), es) }); err != nil {
		t.Fatal(err)
	}
}

func ids(es []auditoutbox.Entry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// testOutboxClaim: claims hand out the oldest free entries in order, never one under a live claim; a
// release (by the owner only) or an expired claim frees them; parked entries are never claimed again;
// deleted ones are gone.
func testOutboxClaim(t *testing.T, b OutboxBackend) {
	s := b.Store.(store.OutboxStore)
	ctx := context.Background()
	queueEntries(t, b, 5)
	all, err := s.OutboxList(ctx, 10)
	if err != nil || len(all) != 5 {
		t.Fatalf("list: %d, %v", len(all), err)
	}
	now := clock()
	until := now.Add(time.Minute)
	claimAs := func(owner string, at time.Time, limit int) []auditoutbox.Entry {
		t.Helper()
		es, err := s.OutboxClaim(ctx, auditoutbox.ClaimParams{Owner: owner, Now: at, Until: at.Add(time.Minute), Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	a := claimAs("a", now, 2)
	if !slices.Equal(ids(a), ids(all[:2])) || a[0].ClaimOwner != "a" || !a[0].ClaimExpireTime.Equal(until) || a[0].Payload[0] != 0 {
		t.Fatalf("first claim %+v", a)
	}
	bb := claimAs("b", now, 10)
	if !slices.Equal(ids(bb), ids(all[2:])) {
		t.Fatalf("second claim %v, want %v", ids(bb), ids(all[2:]))
	}
	if got := claimAs("c", now, 10); len(got) != 0 {
		t.Fatalf("claimed entries under live claims: %v", ids(got))
	}
	// Only the owner's release frees an entry.
	if err := s.OutboxRelease(ctx, "b", ids(a)); err != nil {
		t.Fatal(err)
	}
	if got := claimAs("c", now, 10); len(got) != 0 {
		t.Fatalf("another owner's release freed %v", ids(got))
	}
	if err := s.OutboxRelease(ctx, "a", ids(a)[:1]); err != nil {
		t.Fatal(err)
	}
	if got := claimAs("c", now, 10); !slices.Equal(ids(got), ids(a)[:1]) {
		t.Fatalf("after a release: %v", ids(got))
	}
	// Park one of b's, delete another; after the claims expire the rest is claimed again.
	if err := s.OutboxPark(ctx, bb[0].ID, "InvalidArgument: no", now); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxDelete(ctx, ids(bb[1:2])); err != nil {
		t.Fatal(err)
	}
	later := claimAs("d", until, 10)
	want := []int64{all[0].ID, all[1].ID, all[4].ID}
	if !slices.Equal(ids(later), want) {
		t.Fatalf("after the claims expired: %v, want %v", ids(later), want)
	}
	left, err := s.OutboxList(ctx, 10)
	if err != nil || len(left) != 4 {
		t.Fatalf("left %d, %v", len(left), err)
	}
	for _, e := range left {
		if e.ID == bb[0].ID && (e.ParkReason != "InvalidArgument: no" || !e.ParkTime.Equal(now) || e.ClaimOwner != "") {
			t.Fatalf("parked %+v", e)
		}
	}
}

// testOutboxConcurrentClaims: replicas claiming at once never get the same entry.
func testOutboxConcurrentClaims(t *testing.T, b OutboxBackend) {
	s := b.Store.(store.OutboxStore)
	const entries, claimers = 60, 6
	queueEntries(t, b, entries)
	now := clock()
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	errc := make(chan error, claimers)
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("r", i)
			for range entries { // bounded: each round claims at least one entry or ends the loop
				es, err := s.OutboxClaim(context.Background(), auditoutbox.ClaimParams{Owner: owner, Now: now, Until: now.Add(time.Minute), Limit: 3})
				if err != nil {
					errc <- err
					return
				}
				if len(es) == 0 {
					return
				}
				mu.Lock()
				for _, e := range es {
					if prev, dup := seen[e.ID]; dup {
						errc <- fmt.Errorf("entry %d claimed by %s and %s", e.ID, prev, owner)
					}
					seen[e.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if len(seen) != entries {
		t.Fatalf("%d of %d entries claimed", len(seen), entries)
	}
}
