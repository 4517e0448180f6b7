package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// TestKeyLookupUsesTheIndex: the idempotency lookup of an append can probe the (principal,
// idempotency_key) index pair by pair instead of reading the whole log. As in the ListEvents EXPLAIN
// test, sequential scans are made costly: on this small table reading it all is the cheaper plan, which
// the planner stops choosing as the log grows (checked by hand at 200,000 events, 256 keys: index).
func TestKeyLookupUsesTheIndex(t *testing.T) {
	ctx := context.Background()
	h := dbtest.Open(t, db.Postgres, "audit")
	if _, err := h.Postgres.Pool.Exec(ctx, `INSERT INTO events (sequence, id, occur_time, record_time, actor, action,
			resource, outcome, metadata, idempotency_key, principal, hash_version, previous_hash, hash)
		SELECT i, gen_random_uuid(), to_timestamp(1700000000 + i), to_timestamp(1700000000 + i), 'agent', 'act', 'res', 1, '{}',
			CASE WHEN i % 2 = 0 THEN 'key-' || i END, 'apikey:w' || (i % 4), 2, '\x00', '\x00'
		FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Postgres.Pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	conn, err := h.Postgres.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET enable_seqscan`) //nolint:errcheck // the pool is closed at the end of the test
	for _, n := range []int{1, 8, 256} {
		principals, keys := make([]string, n), make([]string, n)
		for i := range n {
			principals[i], keys[i] = "apikey:w2", "key-"+string(rune('a'+i%26))
		}
		text := explainPlan(t, ctx, conn, byKeysQuery, principals, keys)
		if !strings.Contains(text, "events_principal_idempotency_key") || strings.Contains(text, "Seq Scan on events") {
			t.Errorf("%d keys: the lookup does not use the key index:\n%s", n, text)
		}
	}
}
