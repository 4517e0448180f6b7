package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/storetest"
)

// A new store's first claims, settles and duplicate lookups run while its tables hold a few rows, where
// a sequential scan is the planner's cheapest choice; PostgreSQL keeps a prepared statement's generic
// plan until the table's statistics change, so such a plan scanned the whole table at every claim,
// settle or duplicate delivery until autovacuum analyzed it. Here the plans are made on 30 events and
// looked at after 1,500 more: each still reads an index (delivery transactions plan with sequential scans
// off: indexPlansOnly; the duplicate lookup probes the unique index per key: selectStored). One
// connection, so that the statements the store prepared are the ones looked at.
func TestPlansMadeOnANewStoreStayOnIndexes(t *testing.T) {
	ctx := context.Background()
	c := dbtest.Config(t, db.Postgres)
	c.PoolSize, c.MaxOverflow = 1, 0
	h, err := db.Open(ctx, c, "webhook", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s := New(h.Postgres)
	created := time.Now().UTC().Truncate(time.Microsecond)
	sub := &store.Subscription{ID: storetest.PlanSubscriptionID, Name: "plans", Retry: store.RetryPolicy{MaxRetries: 5,
		BackoffBase: time.Hour, BackoffCap: time.Hour}, LeaseDuration: time.Minute, State: store.SubscriptionActive,
		CreateTime: created, UpdateTime: created}
	if err := s.SubscriptionCreate(ctx, sub); err != nil {
		t.Fatal(err)
	}
	storetest.Fill(t, s, 30)
	// Claims and settles of several deliveries, more than the 5 custom plans PostgreSQL makes before it
	// settles on a generic one (each nacked delivery waits an hour: the next claim takes others).
	now := time.Now().Add(time.Second)
	for i := range 8 {
		res, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: storetest.PlanSubscriptionID, Consumer: "c", Now: now, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		ps := make([]store.SettleParams, len(res.Claimed))
		for j, cl := range res.Claimed {
			ps[j] = store.SettleParams{ID: cl.Delivery.ID, Lease: cl.Delivery.Lease, Now: now, Nack: true, Error: "again"}
		}
		if len(ps) < 2 {
			t.Fatalf("claim %d: %d deliveries, want 2", i, len(ps))
		}
		if _, err := s.DeliverySettleBatch(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	// Deliveries already stored, sent again: the batch insert reads the stored events of its conflicts.
	for i := range 8 {
		dup := &store.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: "fill-0", Status: store.StatusPending,
			ContentType: "application/json", Payload: []byte("p"), ReceiveTime: time.Now().UTC().Truncate(time.Microsecond)}
		got, err := s.EventInsertBatch(ctx, []*store.Event{dup})
		if err != nil || len(got) != 1 || !got[0].Duplicate {
			t.Fatalf("duplicate %d: %+v, %v", i, got, err)
		}
	}
	storetest.Fill(t, s, 1500)
	for _, q := range []struct {
		sql  string
		args string
	}{{deliveriesUpdate, `('{1,2}', '{1,1}', '{0,0}', '{NULL,NULL}', '{1,1}', '{"",""}', '{NULL,NULL}', '{"",""}', '{2020-01-01,2020-01-01}')`},
		{deliveriesLock, `('{1,2}')`}, {selectStored, `('{zoho,zoho}', '{fill-0,fill-1}')`}} {
		var name string
		var generic int64
		err := s.db.Pool.QueryRow(ctx, `SELECT name, generic_plans FROM pg_prepared_statements WHERE statement = $1`, q.sql).Scan(&name, &generic)
		if err != nil {
			t.Fatalf("the store's prepared statement %.40q: %v", q.sql, err)
		}
		if generic == 0 && q.sql == deliveriesUpdate {
			// (The lock may stay on custom plans, made at each execution with the table's size then.)
			t.Fatalf("%.40q: no generic plan yet, the test shows nothing", q.sql)
		}
		rows, err := s.db.Pool.Query(ctx, `EXPLAIN EXECUTE `+pgx.Identifier{name}.Sanitize()+q.args, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "Index Scan") {
			t.Errorf("%.40q: the plan made on a new store does not read an index:\n%s", q.sql, plan)
		}
	}
}
