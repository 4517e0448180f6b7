package sqlite

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
)

// TestListUsesIndexesWithoutSorting keeps every ListEvents filter, in both directions and after a cursor,
// a read of an index in sequence order: SQLite would say "USE TEMP B-TREE FOR ORDER BY" if it had to
// sort the matches.
func TestListUsesIndexesWithoutSorting(t *testing.T) {
	ctx := context.Background()
	h := dbtest.Open(t, db.SQLite, "audit")
	// Many matches for every value, as in a real log, for ANALYZE to give the planner real statistics;
	// denials (outcome 3) are rare, as they are in a real log, so that scanning the log for them is costly.
	if _, err := h.SQLite.Write.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
		INSERT INTO events (sequence, id, occur_time, record_time, actor, action, resource, outcome, metadata, principal,
			hash_version, previous_hash, hash, actor_type, session_id, request_id, source_service)
		SELECT i, 'id-' || i, 1700000000000000 + i * 1000000, 1700000000000000 + i * 1000000, 'agent-' || (i % 10),
			'act.' || (i % 8), 'res/' || (i % 12), CASE WHEN i % 50 = 0 THEN 3 WHEN i % 5 = 0 THEN 2 ELSE 1 END, '{}', 'p', 3, zeroblob(32), zeroblob(32),
			CASE WHEN i % 50 = 25 THEN 3 WHEN i % 4 = 0 THEN 2 ELSE 1 END, 'sess-' || (i % 10), 'req-' || (i % 20), 'svc-' || (i % 6) FROM n;
		ANALYZE;`); err != nil {
		t.Fatal(err)
	}
	// The rowid is the sequence: a full scan or a range of it reads events in sequence order.
	byRowid := []string{"SCAN events", "USING INTEGER PRIMARY KEY"}
	base := time.UnixMicro(1700000000000000).UTC()
	for _, c := range []struct {
		name  string
		p     store.EventListParams
		index []string // the plan names one of these
		sorts bool     // a sort of the few matches is the better plan
	}{
		{"none", store.EventListParams{}, byRowid, false},
		{"actor", store.EventListParams{Actor: "agent-7"}, []string{"USING INDEX events_actor"}, false},
		{"action", store.EventListParams{Action: "act.3"}, []string{"USING INDEX events_action"}, false},
		{"resource", store.EventListParams{Resource: "res/5"}, []string{"USING INDEX events_resource"}, false},
		{"outcome", store.EventListParams{Outcome: 3}, []string{"USING INDEX events_outcome"}, false},
		// Services acting on their own (actor type 3) are rare; a session, request id or source service
		// matches a thousand events or more here, the case where sorting the matches would cost.
		{"actor type", store.EventListParams{ActorType: 3}, []string{"USING INDEX events_actor_type"}, false},
		{"session", store.EventListParams{SessionID: "sess-7"}, []string{"USING INDEX events_session_id"}, false},
		{"request id", store.EventListParams{RequestID: "req-13"}, []string{"USING INDEX events_request_id"}, false},
		{"source service", store.EventListParams{SourceService: "svc-5"}, []string{"USING INDEX events_source_service"}, false},
		{"session and time", store.EventListParams{SessionID: "sess-7", Start: base.Add(time.Hour)}, []string{"USING INDEX events_session_id"}, false},
		// A time range reads the table in rowid (sequence) order and stops after a page of matches.
		{"time range", store.EventListParams{Start: base.Add(time.Hour), End: base.Add(2 * time.Hour)}, byRowid, false},
		// A narrow range: the planner fetches its few matches by events_occur_time and sorts only those.
		{"narrow time range", store.EventListParams{Start: base.Add(time.Hour), End: base.Add(time.Hour + 2*time.Minute)}, []string{"USING INDEX events_occur_time"}, true},
		{"actor and time", store.EventListParams{Actor: "agent-7", Start: base.Add(time.Hour)}, []string{"USING INDEX events_actor"}, false},
	} {
		for _, desc := range []bool{false, true} {
			for _, after := range []int64{0, 10000} {
				p := c.p
				p.Descending, p.After, p.Limit = desc, after, 101
				q, args := store.ListQuery(columns, p, func(t time.Time) any { return t.UnixMicro() })
				rows, err := h.SQLite.Read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
				if err != nil {
					t.Fatal(err)
				}
				var plan []string
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				rows.Close()
				text := strings.Join(plan, "; ")
				if (strings.Contains(text, "TEMP B-TREE") && !c.sorts) || !slices.ContainsFunc(c.index, func(s string) bool { return strings.Contains(text, s) }) {
					t.Errorf("%s descending=%v after=%d: plan %q, want one of %q and no sort", c.name, desc, after, text, c.index)
				}
			}
		}
	}
}
