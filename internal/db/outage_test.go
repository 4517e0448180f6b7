package db_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/testutil"
)

// Item 12 of issue 7: PostgreSQL dying mid-query (pg_ctl stop -m immediate under load) answers
// Unavailable, never Internal, and the same pool serves again once the server is back.
func TestPostgresCrashIsUnavailableAndRecovers(t *testing.T) {
	srv := dbtest.StartPGServer(t)
	cfg := dbtest.Config(t, db.SQLite) // test-sized pool settings; the target is our own server
	cfg.Dialect, cfg.SQLitePath, cfg.PostgresURL, cfg.Schema = db.Postgres, "", srv.URL, "outage"
	cfg.PoolTimeout = time.Second
	ctx := context.Background()
	p, err := db.OpenPostgres(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// The stores reach PostgreSQL three ways: pooled pgx queries, pgx transactions and database/sql over
	// the pool (the token store); the load uses all three.
	sqldb := stdlib.OpenDBFromPool(p.Pool)
	defer sqldb.Close()
	var turn atomic.Int64
	query := func(ctx context.Context) error {
		switch turn.Add(1) % 3 {
		case 0:
			_, err := db.PostgresQueryRow(ctx, p, "SELECT 1 FROM pg_sleep(0.005)", nil, func(s db.Scanner) (int, error) {
				var n int
				return n, s.Scan(&n)
			})
			return err
		case 1:
			return p.Tx(ctx, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, "SELECT pg_sleep(0.005)"); return err })
		}
		_, err := sqldb.ExecContext(ctx, "SELECT pg_sleep(0.005)")
		return db.PostgresError(err)
	}
	var ok, unavailable atomic.Int64
	var mu sync.Mutex
	var wrong []error
	causes := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ { // bounded; ended by stop
				select {
				case <-stop:
					return
				default:
				}
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := query(qctx)
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errs.KindOf(err) == errs.KindUnavailable:
					unavailable.Add(1)
					mu.Lock()
					causes[errors.Unwrap(err).Error()]++
					mu.Unlock()
				default:
					mu.Lock()
					wrong = append(wrong, err)
					mu.Unlock()
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if _, met := testutil.Wait(30*time.Second, cond); !met {
			close(stop)
			wg.Wait()
			t.Fatalf("timed out waiting for %s (ok %d, unavailable %d)", what, ok.Load(), unavailable.Load())
		}
	}
	waitFor("queries under load", func() bool { return ok.Load() > 50 })
	srv.StopImmediate()
	seen := unavailable.Load()
	waitFor("failures while the server is down", func() bool { return unavailable.Load() > seen+20 })
	srv.Start()
	served := ok.Load()
	waitFor("queries after the server returned", func() bool { return ok.Load() > served+50 })
	close(stop)
	wg.Wait()
	for _, err := range wrong {
		t.Errorf("not Unavailable: %v (kind %v)", err, errs.KindOf(err))
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d failures were not Unavailable", len(wrong), int64(len(wrong))+unavailable.Load())
	}
	t.Logf("ok %d, unavailable %d", ok.Load(), unavailable.Load())
	for c, n := range causes {
		t.Logf("%5d × %s", n, c)
	}
}

// An administrator ending a session (pg_terminate_backend: SQLSTATE 57P01) and a pool with no free
// connection are Unavailable too.
func TestPostgresAdminShutdownAndPoolExhaustionAreUnavailable(t *testing.T) {
	ctx := context.Background()
	cfg := dbtest.Config(t, db.Postgres)
	cfg.PoolSize, cfg.MaxOverflow, cfg.PoolTimeout = 1, 0, 200*time.Millisecond
	p, err := db.OpenPostgres(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	conn, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Pool exhausted: the only connection is held.
	if _, err := p.Acquire(ctx); errs.KindOf(err) != errs.KindUnavailable || db.Down(err) {
		t.Fatalf("exhausted pool: %v (down %v): busy, not an outage", err, db.Down(err))
	}
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT 1")
	conn.Release()
	if err == nil {
		t.Fatal("precondition: the terminated session still answered")
	}
	if got := db.PostgresError(err); errs.KindOf(got) != errs.KindUnavailable {
		t.Fatalf("terminated session: %v became kind %v", err, errs.KindOf(got))
	}
	// The pool replaces the dead connection by itself.
	if err := p.Ping(ctx); err != nil && !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("ping after the termination: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "the pool to recover", func() bool { return p.Ping(ctx) == nil })
}
