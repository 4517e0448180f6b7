package sqlite

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/storetest"
)

// Every filter ListEvents accepts is read from an index in seq order: a page costs its own rows, not a
// sort of every event that matches the filter.
func TestListPlansUseIndexesInSeqOrder(t *testing.T) {
	s := New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	storetest.Fill(t, s, 300)
	for name, p := range storetest.ListShapes {
		q, args := store.ListQuery(listColumns, store.BySeq, p)
		plan := explain(t, s, q, args)
		if strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: sorts in a temporary B-tree:\n%s", name, plan)
		}
		// The unfiltered list walks the table itself in rowid (seq) order; every filter needs an index.
		want := map[string]string{"none": "SEARCH events USING INTEGER PRIMARY KEY", "source": "USING INDEX events_source_seq",
			"status": "USING INDEX events_status", "source+status": "USING INDEX events_source_status_seq",
			"module": "USING INDEX events_module_seq", "module+operation": "USING INDEX events_module_seq|USING INDEX events_operation_seq",
			"event_type": "USING INDEX events_event_type_seq",
			"operation":  "USING INDEX events_operation_seq"}[name]
		// Some shapes may be served by either of two indexes ("a|b"): both read in seq order.
		if !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(plan, w) }) {
			t.Errorf("%s: plan does not use %q:\n%s", name, want, plan)
		}
	}
}

func explain(t *testing.T, s *Store, q string, args []any) string {
	t.Helper()
	rows, err := s.db.Read.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
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
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
