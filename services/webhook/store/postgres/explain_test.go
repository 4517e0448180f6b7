package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/storetest"
)

// Every filter ListEvents accepts is read from an index in list order (txid, seq): a page costs its own rows, not a
// sort of every event that matches the filter. Sequential scans are switched off so that the small test
// table shows which index the planner would use on a large one.
func TestListPlansUseIndexesInListOrder(t *testing.T) {
	s := New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	storetest.Fill(t, s, 300)
	for name, p := range storetest.ListShapes {
		q, args := store.ListQuery(listColumns, store.ByCommitHorizon, p)
		plan := explain(t, s, q, args)
		if strings.Contains(plan, "Sort") {
			t.Errorf("%s: plan sorts:\n%s", name, plan)
		}
		want := map[string]string{"none": "events_txid_seq", "source": "events_source_txid_seq", "status": "events_status_txid_seq",
			"source+status": "events_source_status_txid_seq", "module": "events_module_txid_seq",
			"module+operation": "events_module_txid_seq|events_operation_txid_seq", "event_type": "events_event_type_txid_seq",
			"operation": "events_operation_txid_seq"}[name]
		// Some shapes may be served by either of two indexes ("a|b"): both read in list order.
		if !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(plan, "Index Scan using "+w+" ") }) {
			t.Errorf("%s: plan does not scan %s:\n%s", name, want, plan)
		}
	}
}

func explain(t *testing.T, s *Store, q string, args []any) string {
	t.Helper()
	var lines []string
	err := s.db.Tx(context.Background(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		rows, err := tx.Query(context.Background(), "EXPLAIN "+q, args...)
		if err != nil {
			return err
		}
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
