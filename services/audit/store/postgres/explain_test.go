package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
)

// TestListUsesIndexesWithoutSorting keeps every ListEvents filter, in both directions and after a cursor,
// an index scan in sequence order with no Sort node. Each filter has an index ending in sequence; with
// a value matching thousands of rows spread over the log, the planner may as well read the primary key in
// order and filter, which is also sort-free, so either is accepted; for rare denials it must be the
// outcome index. (A value matching a few dozen rows is fetched by a bitmap scan and those few are sorted:
// cheap, and not what this guards.)
func TestListUsesIndexesWithoutSorting(t *testing.T) {
	ctx := context.Background()
	h := dbtest.Open(t, db.Postgres, "audit")
	// Many matches for every value, as in a real log, for ANALYZE to give the planner real statistics;
	// denials (outcome 3) are rare, as they are in a real log, so that scanning the log for them is costly.
	if _, err := h.Postgres.Pool.Exec(ctx, `INSERT INTO events (sequence, id, occur_time, record_time, actor, action,
			resource, outcome, metadata, principal, hash_version, previous_hash, hash, actor_type, session_id, request_id,
			source_service)
		SELECT i, gen_random_uuid(), to_timestamp(1700000000 + i), to_timestamp(1700000000 + i), 'agent-' || (i % 10),
			'act.' || (i % 8), 'res/' || (i % 12), CASE WHEN i % 50 = 0 THEN 3 WHEN i % 5 = 0 THEN 2 ELSE 1 END, '{}', 'p', 3, '\x00', '\x00',
			CASE WHEN i % 50 = 25 THEN 3 WHEN i % 4 = 0 THEN 2 ELSE 1 END, 'sess-' || (i % 10), 'req-' || (i % 20), 'svc-' || (i % 6)
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
	base := time.Unix(1700000000, 0).UTC()
	for _, c := range []struct {
		name  string
		p     store.EventListParams
		index string
		only  bool // the primary key read in order is not good enough
		sorts bool // a sort of the few matches is the better plan
	}{
		{"none", store.EventListParams{}, "events_pkey", false, false},
		{"actor", store.EventListParams{Actor: "agent-7"}, "events_actor", false, false},
		{"action", store.EventListParams{Action: "act.3"}, "events_action", false, false},
		{"resource", store.EventListParams{Resource: "res/5"}, "events_resource", false, false},
		{"outcome", store.EventListParams{Outcome: 3}, "events_outcome", true, false},
		// Services acting on their own (actor type 3) are rare; a session, request id or source service
		// matches a thousand events or more here, the case where sorting the matches would cost.
		// 1% of the log: past a cursor the planner may read the primary key in order and filter instead,
		// which is as sort-free.
		{"actor type", store.EventListParams{ActorType: 3}, "events_actor_type", false, false},
		{"session", store.EventListParams{SessionID: "sess-7"}, "events_session_id", false, false},
		{"request id", store.EventListParams{RequestID: "req-13"}, "events_request_id", false, false},
		{"source service", store.EventListParams{SourceService: "svc-5"}, "events_source_service", false, false},
		{"session and time", store.EventListParams{SessionID: "sess-7", Start: base.Add(time.Hour)}, "events_session_id", false, false},
		// A time range reads the primary key in sequence order and stops after a page of matches.
		{"time range", store.EventListParams{Start: base.Add(time.Hour), End: base.Add(3 * time.Hour)}, "events_pkey", false, false},
		// A narrow range: the planner fetches its few matches by events_occur_time and sorts only those.
		{"narrow time range", store.EventListParams{Start: base.Add(time.Hour), End: base.Add(time.Hour + 2*time.Minute)}, "events_occur_time", true, true},
		{"actor and time", store.EventListParams{Actor: "agent-7", Start: base.Add(time.Hour)}, "events_actor", false, false},
	} {
		for _, desc := range []bool{false, true} {
			for _, after := range []int64{0, 10000} {
				p := c.p
				p.Descending, p.After, p.Limit = desc, after, 101
				q, args := store.ListQuery(columns, p, func(t time.Time) any { return t })
				text := explainPlan(t, ctx, conn, q, args...)
				uses := func(index string) bool {
					return strings.Contains(text, "Index Scan using "+index) || strings.Contains(text, "Index Scan Backward using "+index)
				}
				usesIndex := uses(c.index) || (!c.only && uses("events_pkey"))
				if (strings.Contains(text, "Sort") && !c.sorts) || !usesIndex {
					t.Errorf("%s descending=%v after=%d: want an index scan of %s (or events_pkey unless only=%v) and no Sort, plan:\n%s", c.name, desc, after, c.index, c.only, text)
				}
			}
		}
	}
}
