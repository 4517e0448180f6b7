package audit

import (
	"context"
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

// TestEventsFromBeforePrincipalsStillVerify: a log written by the first schema (no principal, hash
// version 1), migrated, then appended to, verifies from end to end; an old row's idempotency key does
// not capture a new writer's event.
func TestEventsFromBeforePrincipalsStillVerify(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			old := dbtest.OpenAtVersion(t, d, dbtest.Config(t, d), "audit", 1)
			h, sqldb := old.Handle, old.SQL
			timeArg := func(t time.Time) any { return t.UnixMicro() }
			if d == db.Postgres {
				timeArg = func(t time.Time) any { return t }
			}
			// Two events as the first version wrote them, the second with an idempotency key.
			prev := chain.Genesis
			for i, key := range []string{"", "shared-key"} {
				e := storetest.NewEvent("agent-old", "old.action", time.Now())
				e.Principal, e.IdempotencyKey, e.HashVersion, e.Sequence, e.PreviousHash = "", key, chain.V1, int64(i+1), prev
				e.Hash = chain.Hash(prev, e.Fields())
				var k any
				if key != "" {
					k = key
				}
				if _, err := sqldb.ExecContext(ctx, `INSERT INTO events (sequence, id, occur_time, record_time, actor, action, resource,
						outcome, metadata, idempotency_key, previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
					e.Sequence, e.ID, timeArg(e.OccurTime), timeArg(e.RecordTime), e.Actor, e.Action, e.Resource, e.Outcome, e.Metadata,
					k, e.PreviousHash, e.Hash); err != nil {
					t.Fatal(err)
				}
				if _, err := sqldb.ExecContext(ctx, `UPDATE chain_head SET sequence = $1, hash = $2 WHERE id = 1`, e.Sequence, e.Hash); err != nil {
					t.Fatal(err)
				}
				prev = e.Hash
			}
			old.Upgrade(t)
			var st store.Store
			if d == db.SQLite {
				st = sqlite.New(h.SQLite)
			} else {
				st = postgres.New(h.Postgres)
			}
			s := NewServer(st, DefaultLimits)
			req := request(nil)
			req.IdempotencyKey = "shared-key"
			got, err := s.RecordEvent(as("apikey:new-writer"), req)
			if err != nil || got.GetDuplicate() || got.GetEvent().GetSequence() != 3 {
				t.Fatalf("new writer with an old key: %v %v", got, err)
			}
			es, err := st.EventList(ctx, store.EventListParams{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 3 || es[0].HashVersion != chain.V1 || es[0].Principal != "" || es[2].HashVersion != chain.Current {
				t.Fatalf("events after the upgrade: %+v", es)
			}
			storetest.VerifyChain(t, es)
		})
	}
}

// TestMigration0002Reverts: the down migration restores the first schema, and refuses to when two
// writers have used one key since (keys were global before, which it cannot restore silently).
func TestMigration0002Reverts(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			fsys, ms := dbtest.Migrations(t, d, "audit")
			down, err := fs.ReadFile(fsys, "0002_principal_indexes.down.sql")
			if err != nil {
				t.Fatal(err)
			}
			for _, conflicting := range []bool{false, true} {
				h := dbtest.Open(t, d, "audit")
				var st store.Store
				if d == db.SQLite {
					st = sqlite.New(h.SQLite)
				} else {
					st = postgres.New(h.Postgres)
				}
				for i, p := range []string{"apikey:a", "apikey:b"} {
					e := storetest.NewEvent("agent", "x", time.Now())
					e.Principal, e.IdempotencyKey = p, fmt.Sprintf("key-%d", i)
					if conflicting {
						e.IdempotencyKey = "same"
					}
					if _, _, err := st.EventAppend(ctx, e); err != nil {
						t.Fatal(err)
					}
				}
				sqldb := h.SQL()
				if d == db.Postgres {
					defer sqldb.Close()
				}
				_, err := sqldb.ExecContext(ctx, string(down))
				if (err == nil) == conflicting {
					t.Errorf("down migration with conflicting keys=%v: %v", conflicting, err)
				}
				if !conflicting { // and up again, on the reverted schema with its rows
					if _, err := sqldb.ExecContext(ctx, ms[1].Up); err != nil {
						t.Errorf("up after down: %v", err)
					}
				}
			}
		})
	}
}
