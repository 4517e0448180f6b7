package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// TestKeyLookupProbesTheIndexOnASmallLog: with the planner's own choices (sequential scans allowed,
// statistics up to date), the idempotency lookup of a batch probes the key index pair by pair even on a
// log small enough that reading it whole looks cheaper. Flattened into a join, the lookup read every
// event under the chain head's lock on every batch until the log outgrew about a hundred thousand
// events, which is where every new installation and every benchmark starts.
func TestKeyLookupProbesTheIndexOnASmallLog(t *testing.T) {
	ctx := context.Background()
	h := dbtest.Open(t, db.Postgres, "audit")
	if _, err := h.Postgres.Pool.Exec(ctx, `INSERT INTO events (sequence, id, occur_time, record_time, actor, action,
			resource, outcome, metadata, idempotency_key, principal, hash_version, previous_hash, hash)
		SELECT i, gen_random_uuid(), to_timestamp(1700000000 + i), to_timestamp(1700000000 + i), 'agent', 'act', 'res', 1,
			'{"tool":"crm.update","fields":["Stage","Amount"]}', 'key-' || i, 'apikey:w1', 2, '\x00', '\x00'
		FROM generate_series(1, 5000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Postgres.Pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{100, 1000} {
		principals, keys := make([]string, n), make([]string, n)
		for i := range n {
			principals[i], keys[i] = "apikey:w1", fmt.Sprintf("new-%d", i)
		}
		text := explainPlan(t, ctx, h.Postgres.Pool, byKeysQuery, principals, keys)
		if !strings.Contains(text, "events_principal_idempotency_key") || strings.Contains(text, "Seq Scan on events") {
			t.Errorf("%d keys on 5,000 events: the lookup reads the log instead of probing the key index:\n%s", n, text)
		}
	}
}
