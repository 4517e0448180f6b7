package sqlite

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
// is still a read of its own index in sequence order, in both directions and after a cursor: the list
// query's implied term (session_id <> ”) is what lets SQLite use a partial index.
func TestContextFiltersUsePartialIndexes(t *testing.T) {
	ctx := context.Background()
	h := dbtest.Open(t, db.SQLite, "audit")
	for _, name := range []string{"events_actor_type", "events_session_id", "events_request_id", "events_source_service"} {
		var sql string
		if err := h.SQLite.Read.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&sql); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(sql, " WHERE ") {
			t.Errorf("%s is not partial: %s", name, sql)
		}
	}
	// Nine events in ten leave the context unset; the rest name one of a hundred sessions, two hundred request ids,
	// sixty services, and an actor type (services, 3, are one event in a hundred).
	if _, err := h.SQLite.Write.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
		INSERT INTO events (sequence, id, occur_time, record_time, actor, action, resource, outcome, metadata, principal,
			hash_version, previous_hash, hash, actor_type, session_id, request_id, source_service)
		SELECT i, 'id-' || i, 1700000000000000 + i * 1000000, 1700000000000000 + i * 1000000, 'agent-' || (i % 10),
			'act.' || (i % 8), 'res/' || (i % 12), 1, '{}', 'p', 3, zeroblob(32), zeroblob(32),
			CASE WHEN i % 100 = 0 THEN 3 WHEN i % 10 = 0 THEN 1 ELSE 0 END,
			CASE WHEN i % 10 = 0 THEN 'sess-' || (i % 100) ELSE '' END,
			CASE WHEN i % 10 = 0 THEN 'req-' || (i % 200) ELSE '' END,
			CASE WHEN i % 10 = 0 THEN 'svc-' || (i % 60) ELSE '' END FROM n;
		ANALYZE;`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		p     store.EventListParams
		index string
	}{
		{"actor type", store.EventListParams{ActorType: 3}, "events_actor_type"},
		{"session", store.EventListParams{SessionID: "sess-70"}, "events_session_id"},
		{"request id", store.EventListParams{RequestID: "req-130"}, "events_request_id"},
		{"source service", store.EventListParams{SourceService: "svc-50"}, "events_source_service"},
		{"session and time", store.EventListParams{SessionID: "sess-70", Start: time.UnixMicro(1700000000000000).Add(time.Hour)}, "events_session_id"},
	} {
		for _, desc := range []bool{false, true} {
			for _, after := range []int64{0, 10000} {
				p := c.p
				p.Descending, p.After, p.Limit = desc, after, 101
				q, args := store.ListQuery(columns, p, func(t time.Time) any { return t.UnixMicro() })
				var plan []string
				rows, err := h.SQLite.Read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
				if err != nil {
					t.Fatal(err)
				}
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
				if strings.Contains(text, "TEMP B-TREE") || !strings.Contains(text, "USING INDEX "+c.index+" ") {
					t.Errorf("%s descending=%v after=%d: plan %q, want %s and no sort", c.name, desc, after, text, c.index)
				}
			}
		}
	}
}
