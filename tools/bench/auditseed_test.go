package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/tools/bench/internal/auditload"
)

// TestSeededStoreIsAChainWithEveryIndex: the benchmark's bulk-loaded store is what the service would have
// appended (every hash recomputes from sequence 1, the head is the last event), keeps every index the
// migrations made, and a second call reuses it instead of seeding again.
func TestSeededStoreIsAChainWithEveryIndex(t *testing.T) {
	const n = 2 * auditload.Actors * 3 // a few short sessions per actor
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := dbtest.Config(t, d)
			env := map[string]string{"DATA_DIR": t.TempDir()}
			if d == db.Postgres {
				env["DATABASE_URL"], env["AUDIT_DATABASE_SCHEMA"] = c.PostgresURL, c.Schema
			}
			cfg := db.LoadConfig(config.FromMap(env), "audit")
			fresh := indexes(t, ctx, cfg)

			info, err := seedAudit(ctx, env, n)
			if err != nil {
				t.Fatal(err)
			}
			if info.took == 0 || info.version == "" {
				t.Fatalf("first seeding: %+v", info)
			}
			if got := indexes(t, ctx, cfg); got != fresh {
				t.Fatalf("%d indexes on events after seeding, %d after migrating", got, fresh)
			}
			h, err := db.Open(ctx, cfg, "audit", false)
			if err != nil {
				t.Fatal(err)
			}
			var st store.Store
			if h.SQLite != nil {
				st = sqlite.New(h.SQLite)
			} else {
				st = postgres.New(h.Postgres)
			}
			defer st.Close()
			prev, seq := chain.Genesis, int64(0)
			for range n { // bounded: each page moves forward
				page, err := st.EventList(ctx, store.EventListParams{After: seq, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				for _, e := range page {
					if e.Sequence != seq+1 || !bytes.Equal(e.PreviousHash, prev) || !bytes.Equal(chain.Hash(prev, e.Fields()), e.Hash) {
						t.Fatalf("event %d does not chain to event %d", e.Sequence, seq)
					}
					seq, prev = e.Sequence, e.Hash
				}
			}
			if seq != n {
				t.Fatalf("chain ends at %d, want %d", seq, n)
			}
			// The event appended next chains on from the seeded head.
			res, err := st.Append(ctx, []store.Pending{{Event: &store.Event{ID: "0190b6d0-0000-7000-8000-000000000001", OccurTime: time.Now().UTC().Truncate(time.Microsecond),
				RecordTime: time.Now().UTC().Truncate(time.Microsecond), Actor: "a", Action: "b", Outcome: 1, Metadata: "{}", Principal: seedPrincipal}}})
			if err != nil {
				t.Fatal(err)
			}
			if e := res[0].Event; e.Sequence != n+1 || !bytes.Equal(e.PreviousHash, prev) {
				t.Fatalf("next append: sequence %d", e.Sequence)
			}
			// One session's events, through the session index.
			page, err := st.EventList(ctx, store.EventListParams{SessionID: auditload.Session(1), Limit: 1000})
			if err != nil || len(page) != n/auditload.Actors {
				t.Fatalf("session %s: %d events, %v", auditload.Session(1), len(page), err)
			}

			if d == db.SQLite { // PostgreSQL's schema is reused the same way (by its head), but this one has grown by one
				st.Close()
				info, err = seedAudit(ctx, env, n+1)
				if err != nil || info.took != 0 {
					t.Fatalf("second call: %+v, %v: the store was seeded again", info, err)
				}
			}
		})
	}
}

// indexes counts the indexes on events.
func indexes(t *testing.T, ctx context.Context, cfg db.Config) int {
	t.Helper()
	h, err := db.Open(ctx, cfg, "audit", true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var k int
	if h.SQLite != nil {
		err = h.SQLite.Read.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'`).Scan(&k)
	} else {
		err = h.Postgres.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'events'`).Scan(&k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}
