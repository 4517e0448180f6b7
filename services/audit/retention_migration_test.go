package audit

import (
	"bytes"
	"context"
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

// TestMigration0004UpgradesAndReverts: a log written before checkpoints and retention reads, after the
// upgrade, as never cut (anchor 0, the genesis hash) and can be cut; the down migration restores the
// guard that refuses every delete, and up applies again.
func TestMigration0004UpgradesAndReverts(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			// Bounded, so that a stuck statement fails the test with its cause instead of at the binary's timeout.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			old := dbtest.OpenAtVersion(t, d, dbtest.Config(t, d), "audit", 3)
			var st store.Store
			if d == db.SQLite {
				st = sqlite.New(old.Handle.SQLite)
			} else {
				st = postgres.New(old.Handle.Postgres)
			}
			var last *store.Event
			for range 3 {
				var err error
				if last, _, err = st.EventAppend(ctx, storetest.NewEvent("a", "x", time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			old.Upgrade(t)
			cs, err := st.ChainState(ctx)
			if err != nil || cs.HeadSeq != 3 || !bytes.Equal(cs.HeadHash, last.Hash) || cs.AnchorSeq != 0 || !bytes.Equal(cs.AnchorHash, chain.Genesis) {
				t.Fatalf("chain state after the upgrade: %+v %v", cs, err)
			}
			if cut, err := st.RetentionCut(ctx, time.Now().Add(time.Hour), 10); err != nil || cut.Through != 2 {
				t.Fatalf("cut after the upgrade: %+v %v", cut, err)
			}

			fsys, ms := dbtest.Migrations(t, d, "audit")
			down, err := fs.ReadFile(fsys, "0004_checkpoints_retention.down.sql")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := old.SQL.ExecContext(ctx, string(down)); err != nil {
				t.Fatalf("down: %v", err)
			}
			if _, err := old.SQL.ExecContext(ctx, "DELETE FROM events"); err == nil {
				t.Fatal("a delete succeeded after the down migration")
			}
			if _, err := old.SQL.ExecContext(ctx, ms[3].Up); err != nil {
				t.Fatalf("up after down: %v", err)
			}
		})
	}
}
