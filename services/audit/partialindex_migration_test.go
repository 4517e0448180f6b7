package audit

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

// TestMigration0005UpgradesAndReverts: a log written at 0004, with and without context, lists by every
// context filter the same after the upgrade to partial indexes (events with the field unset are left out
// of its index, never out of an unfiltered list), the chain still verifies, and the down migration
// restores whole indexes, after which up applies again.
func TestMigration0005UpgradesAndReverts(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			old := dbtest.OpenAtVersion(t, d, dbtest.Config(t, d), "audit", 4)
			var st store.Store
			if d == db.SQLite {
				st = sqlite.New(old.Handle.SQLite)
			} else {
				st = postgres.New(old.Handle.Postgres)
			}
			for i := range 6 {
				e := storetest.NewEvent("a", "x", time.Now())
				if i%2 == 1 {
					e.ActorType, e.SessionID, e.RequestID, e.SourceService = 3, "s-1", "r-1", "svc"
				}
				if _, _, err := st.EventAppend(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			list := func(p store.EventListParams) []int64 {
				p.Limit = 100
				es, err := st.EventList(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				var seqs []int64
				for _, e := range es {
					seqs = append(seqs, e.Sequence)
				}
				return seqs
			}
			filters := []store.EventListParams{{ActorType: 3}, {SessionID: "s-1"}, {RequestID: "r-1"}, {SourceService: "svc"}}
			check := func(when string) {
				t.Helper()
				for _, p := range filters {
					if got := list(p); len(got) != 3 || got[0] != 2 || got[1] != 4 || got[2] != 6 {
						t.Errorf("%s: %+v lists %v, want [2 4 6]", when, p, got)
					}
				}
				if got := list(store.EventListParams{}); len(got) != 6 {
					t.Errorf("%s: unfiltered list %v", when, got)
				}
			}
			check("before the upgrade")
			old.Upgrade(t)
			check("after the upgrade")
			if partial := partialIndexes(ctx, t, old, d); partial != 4 {
				t.Errorf("after the upgrade: %d partial context indexes, want 4", partial)
			}
			es, err := st.EventList(ctx, store.EventListParams{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			storetest.VerifyChain(t, es)

			fsys, ms := dbtest.Migrations(t, d, "audit")
			down, err := fs.ReadFile(fsys, "0005_partial_context_indexes.down.sql")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := old.SQL.ExecContext(ctx, string(down)); err != nil {
				t.Fatalf("down: %v", err)
			}
			if partial := partialIndexes(ctx, t, old, d); partial != 0 {
				t.Errorf("after the down migration: %d partial context indexes", partial)
			}
			check("after the down migration")
			if _, err := old.SQL.ExecContext(ctx, ms[4].Up); err != nil {
				t.Fatalf("up after down: %v", err)
			}
			if partial := partialIndexes(ctx, t, old, d); partial != 4 {
				t.Errorf("up after down: %d partial context indexes, want 4", partial)
			}
		})
	}
}

// partialIndexes counts the context filters' indexes that exist and are partial.
func partialIndexes(ctx context.Context, t *testing.T, old *dbtest.Old, d db.Dialect) int {
	t.Helper()
	q := `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1`
	if d == db.Postgres {
		q = `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1`
	}
	n := 0
	for _, name := range []string{"events_actor_type", "events_session_id", "events_request_id", "events_source_service"} {
		var def string
		if err := old.SQL.QueryRowContext(ctx, q, name).Scan(&def); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(def, " WHERE ") {
			n++
		}
	}
	return n
}
