package db_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/migrate"
)

func forEachDialect(t *testing.T, fn func(t *testing.T, d db.Dialect)) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) { t.Parallel(); fn(t, d) })
	}
}

func TestOpenMigratesOnceAndRefusesNewerSchema(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		cfg := dbtest.Config(t, d)
		if _, err := db.Open(ctx, cfg, "token", false); err == nil || !strings.Contains(err.Error(), "run migrations") {
			t.Fatalf("MIGRATE_ON_START=false on an empty database: %v", err)
		}
		h, err := db.Open(ctx, cfg, "token", true)
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		h, err = db.Open(ctx, cfg, "token", false) // already current: accepted without migrating
		if err != nil {
			t.Fatal(err)
		}
		sqldb := h.SQL()
		if _, err := sqldb.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)"); err != nil {
			t.Fatal(err)
		}
		if d == db.Postgres {
			sqldb.Close()
		}
		h.Close()
		for _, up := range []bool{true, false} {
			_, err := db.Open(ctx, cfg, "token", up)
			if err == nil || !strings.Contains(err.Error(), "newer than this binary knows") {
				t.Fatalf("newer schema (migrate=%v) accepted: %v", up, err)
			}
		}
	})
}

func TestConcurrentStartsMigrateOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d db.Dialect) {
		cfg := dbtest.Config(t, d)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := db.Open(context.Background(), cfg, "audit", true)
				if err == nil {
					h.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent start failed: %v", err)
			}
		}
	})
}

func TestFailedMigrationRollsBack(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		h := dbtest.Open(t, d, "webhook")
		sqldb := h.SQL()
		if d == db.Postgres {
			defer sqldb.Close()
		}
		ms, err := migrate.Load(fstest.MapFS{
			"0001_ok.up.sql":     {Data: []byte("CREATE TABLE extra_ok (id INTEGER)")},
			"0002_broken.up.sql": {Data: []byte("CREATE TABLE extra_broken (id INTEGER); SELECT no_such_column FROM extra_ok")},
		})
		if err != nil {
			t.Fatal(err)
		}
		dialect := migrate.SQLite
		if d == db.Postgres {
			dialect = migrate.Postgres
		}
		// Forget the real schema's history so that the two test migrations count from 1.
		if _, err := sqldb.ExecContext(ctx, "DELETE FROM schema_migrations"); err != nil {
			t.Fatal(err)
		}
		n, err := migrate.Up(ctx, sqldb, dialect, ms)
		if err == nil || n != 1 {
			t.Fatalf("applied %d, err %v; want 1 applied then a failure", n, err)
		}
		if v, _ := migrate.Version(ctx, sqldb, dialect); v != 1 {
			t.Fatalf("version %d after a failed migration, want 1", v)
		}
		var exists int
		q := "SELECT COUNT(*) FROM sqlite_master WHERE name = 'extra_broken'"
		if d == db.Postgres {
			q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'extra_broken'"
		}
		if err := sqldb.QueryRowContext(ctx, q).Scan(&exists); err != nil || exists != 0 {
			t.Fatalf("half-applied migration left its table behind (%d, %v)", exists, err)
		}
	})
}

func TestLoadRejectsGapsAndBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"0001_a.up.sql": {}, "0003_c.up.sql": {}},
		"bad name": {"first.up.sql": {}},
	} {
		if _, err := migrate.Load(fsys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
