package store_test

import (
	"context"
	"io/fs"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/store/sqlite"
)

// Events stored before 0007 were pending with no subscription to deliver them: the upgrade stores them
// as delivered (what an event no subscription wants is), so that they do not count as backlog forever;
// 0007 reverts and applies again; the deliveries table refuses an available time that disagrees with the
// status.
func TestMigration0007Deliveries(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			old := dbtest.OpenAtVersion(t, d, dbtest.Config(t, d), "webhook", 6)
			insertOld(t, old.SQL, d, `[]`, "01900000-0000-7000-8000-000000000001", "a")
			old.Upgrade(t)
			var s store.Store
			if d == db.SQLite {
				s = sqlite.New(old.Handle.SQLite)
			} else {
				s = postgres.New(old.Handle.Postgres)
			}
			e, err := s.EventGet(ctx, "01900000-0000-7000-8000-000000000001")
			if err != nil || e.Status != store.StatusDelivered {
				t.Fatalf("old pending event after the upgrade: %+v %v", e, err)
			}
			exec := func(q string) error { _, err := old.SQL.ExecContext(ctx, q); return err }
			now := "1"
			if d == db.Postgres {
				now = "now()"
			}
			row := func(status, available string) string {
				return `INSERT INTO deliveries (subscription_id, event_id, source, status, attempt_count, available_time, lease, consumer,
					last_error, event_receive_time, create_time, update_time)
					VALUES ('01900000-0000-7000-8000-00000000000a', '01900000-0000-7000-8000-000000000001', 'zoho', ` + status + `, 0, ` +
					available + `, 0, '', '', ` + now + `, ` + now + `, ` + now + `)`
			}
			for _, bad := range [][2]string{{"1", "NULL"}, {"2", "NULL"}, {"4", "NULL"}, {"3", now}, {"5", now}, {"6", "NULL"}} {
				if err := exec(row(bad[0], bad[1])); err == nil {
					t.Errorf("status %s with available time %s stored", bad[0], bad[1])
				}
			}
			if err := exec(row("1", now)); err != nil {
				t.Fatalf("a valid delivery: %v", err)
			}
			fsys, ms := dbtest.Migrations(t, d, "webhook")
			down, err := fs.ReadFile(fsys, "0007_deliveries.down.sql")
			if err != nil {
				t.Fatal(err)
			}
			if err := exec(string(down)); err != nil {
				t.Fatalf("down: %v", err)
			}
			if err := exec(`SELECT 1 FROM deliveries`); err == nil {
				t.Fatal("deliveries still there after down")
			}
			if err := exec(ms[6].Up); err != nil {
				t.Fatalf("up after down: %v", err)
			}
			if err := exec(row("1", now)); err != nil {
				t.Fatalf("a valid delivery after up: %v", err)
			}
		})
	}
}
