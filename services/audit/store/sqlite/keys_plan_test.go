package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
)

// TestKeyLookupProbesTheIndex: the batch's idempotency lookup, one statement whatever the number of
// keys, probes the (principal, idempotency_key) index key by key (SEARCH ... USING INDEX, never a SCAN
// of events), on an empty log and on one with statistics; and it finds what it should among many keys,
// for several principals.
func TestKeyLookupProbesTheIndex(t *testing.T) {
	ctx := context.Background()
	h := dbtest.Open(t, db.SQLite, "audit")
	plan := func() string {
		rows, err := h.SQLite.Read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+byKeysQuery, "apikey:w1", `["a","b"]`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		return strings.Join(lines, "\n")
	}
	check := func(when string) {
		p := plan()
		if !strings.Contains(p, "SEARCH events USING INDEX events_principal_idempotency_key (principal=? AND idempotency_key=?)") || strings.Contains(p, "SCAN events") {
			t.Errorf("%s: the key lookup does not probe the key index:\n%s", when, p)
		}
	}
	check("empty log")

	log := New(h.SQLite)
	defer log.Close()
	var ps []store.Pending
	for i := range 300 {
		ps = append(ps, store.Pending{Event: &store.Event{ID: fmt.Sprintf("0190b6d0-0000-7000-8000-%012d", i), Actor: "a", Action: "b",
			Outcome: 1, Metadata: "{}", Principal: fmt.Sprintf("apikey:w%d", i%3), IdempotencyKey: fmt.Sprintf("k-%d", i/3)}})
	}
	if _, err := log.Append(ctx, ps); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SQLite.Write.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	check("after ANALYZE")

	// Through the driver: every stored key of two principals found once, unknown keys and another
	// principal's keys not at all.
	var found []*store.Event
	err := NewDriver(h.SQLite).AppendTx(ctx, func(tx store.AppendTx) error {
		var keys []store.Key
		for i := range 120 {
			keys = append(keys, store.Key{Principal: "apikey:w1", IdempotencyKey: fmt.Sprintf("k-%d", i)}) // 100 stored, 20 not
		}
		keys = append(keys, store.Key{Principal: "apikey:w2", IdempotencyKey: "k-7"}, store.Key{Principal: "apikey:w9", IdempotencyKey: "k-1"})
		var err error
		found, err = tx.EventsByKeys(ctx, keys)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[store.Key]bool{}
	for _, e := range found {
		k := store.Key{Principal: e.Principal, IdempotencyKey: e.IdempotencyKey}
		if seen[k] {
			t.Fatalf("%v found twice", k)
		}
		seen[k] = true
	}
	if len(found) != 101 || !seen[store.Key{Principal: "apikey:w2", IdempotencyKey: "k-7"}] {
		t.Fatalf("found %d events, want the 100 stored keys of apikey:w1 and k-7 of apikey:w2", len(found))
	}
}
