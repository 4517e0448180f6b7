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

// TestContextFiltersUsePartialIndexes: the indexes of actor type, session, request id and source service
// leave out unset values (migration 0005), and on a log where most events leave them unset, each filter
// is an index scan of its own index with no Sort, in both directions and after a cursor: the list query's
// implied term (session_id <> ”) is what lets PostgreSQL prove the partial index covers the match, and
// without it the planner cannot use the index at all. The primary key read in order is not accepted here.
func TestContextFiltersUsePartialIndexes(t *testing.T) {
	ctx := context.Background()
	h := dbtest.Open(t, db.Postgres, "audit")
	for _, name := range []string{"events_actor_type", "events_session_id", "events_request_id", "events_source_service"} {
		var def string
		if err := h.Postgres.Pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1`, name).Scan(&def); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(def, " WHERE ") {
			t.Errorf("%s is not partial: %s", name, def)
		}
	}
	// Nine events in ten leave the context unset; the rest name one of a hundred sessions, two hundred request ids,
	// sixty services, and an actor type (services, 3, are one event in a hundred).
	if _, err := h.Postgres.Pool.Exec(ctx, `INSERT INTO events (sequence, id, occur_time, record_time, actor, action,
			resource, outcome, metadata, principal, hash_version, previous_hash, hash, actor_type, session_id, request_id,
			source_service)
		SELECT i, gen_random_uuid(), to_timestamp(1700000000 + i), to_timestamp(1700000000 + i), 'agent-' || (i % 10),
			'act.' || (i % 8), 'res/' || (i % 12), 1, '{}', 'p', 3, '\x00', '\x00',
			CASE WHEN i % 100 = 0 THEN 3 WHEN i % 10 = 0 THEN 1 ELSE 0 END,
			CASE WHEN i % 10 = 0 THEN 'sess-' || (i % 100) ELSE '' END,
			CASE WHEN i % 10 = 0 THEN 'req-' || (i % 200) ELSE '' END,
			CASE WHEN i % 10 = 0 THEN 'svc-' || (i % 60) ELSE '' END
		FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Postgres.Pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	// Only the question whether the partial index can serve the filter: a bitmap scan of a few hundred
	// matches and their sort, or a scan of the table, may be as cheap at this size.
	conn, err := h.Postgres.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET enable_bitmapscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET ALL`) //nolint:errcheck // the pool is closed at the end of the test
	base := time.Unix(1700000000, 0).UTC()
	for _, c := range []struct {
		name  string
		p     store.EventListParams
		index string
	}{
		{"actor type", store.EventListParams{ActorType: 3}, "events_actor_type"},
		{"session", store.EventListParams{SessionID: "sess-70"}, "events_session_id"},
		{"request id", store.EventListParams{RequestID: "req-130"}, "events_request_id"},
		{"source service", store.EventListParams{SourceService: "svc-50"}, "events_source_service"},
		{"session and time", store.EventListParams{SessionID: "sess-70", Start: base.Add(time.Hour)}, "events_session_id"},
	} {
		for _, desc := range []bool{false, true} {
			for _, after := range []int64{0, 10000} {
				p := c.p
				p.Descending, p.After, p.Limit = desc, after, 101
				q, args := store.ListQuery(columns, p, func(t time.Time) any { return t })
				text := explainPlan(t, ctx, conn, q, args...)
				uses := strings.Contains(text, "Index Scan using "+c.index+" ") || strings.Contains(text, "Index Scan Backward using "+c.index+" ")
				if strings.Contains(text, "Sort") || !uses {
					t.Errorf("%s descending=%v after=%d: want an index scan of %s and no Sort, plan:\n%s", c.name, desc, after, c.index, text)
				}
			}
		}
	}
}
