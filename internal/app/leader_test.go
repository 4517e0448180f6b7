package app

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// jobLog records which instance runs a single-replica job, and whether two ever ran at once.
type jobLog struct {
	running atomic.Int32
	overlap atomic.Bool
	starts  chan int
	stops   chan int
}

func newJobLog() *jobLog { return &jobLog{starts: make(chan int, 10), stops: make(chan int, 10)} }

func (l *jobLog) worker(instance int) Worker {
	return Worker{Name: "test.singleton", SingleReplica: true, Run: func(ctx context.Context) error {
		if l.running.Add(1) > 1 {
			l.overlap.Store(true)
		}
		l.starts <- instance
		<-ctx.Done()
		l.running.Add(-1)
		l.stops <- instance
		return nil
	}}
}

func next(t *testing.T, c chan int, what string) int {
	t.Helper()
	select {
	case i := <-c:
		return i
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return -1
	}
}

// Two instances of a service on one PostgreSQL schema: exactly one runs the single-replica job while the
// other keeps trying; when the leader's connection is killed, its job stops and the other takes over,
// never both at once.
func TestSingleReplicaJobHasOneLeaderAndFailsOver(t *testing.T) {
	cfg := dbtest.Config(t, db.Postgres)
	ctx := context.Background()
	jobs := newJobLog()
	var losses [2]atomic.Int64
	var workers [2]*Workers
	for i := range 2 {
		pg, err := db.OpenPostgres(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		e := db.NewPostgresElector(pg, quietLog())
		// Short intervals; the takeover delay (Check+CheckTimeout) stays well above the time a deposed
		// leader needs to notice (one Check).
		e.Retry, e.Check, e.CheckTimeout = 30*time.Millisecond, 30*time.Millisecond, 500*time.Millisecond
		e.Rejoin = 2 * time.Second // the follower, trying every 30 ms, takes over first
		e.OnTry = func(_ string, won bool) {
			if !won {
				losses[i].Add(1)
			}
		}
		ws, err := StartWorkers(ctx, quietLog(), Background{Workers: []Worker{jobs.worker(i)}, Elector: e})
		if err != nil {
			t.Fatal(err)
		}
		workers[i] = ws
		t.Cleanup(func() { ws.Stop(5 * time.Second) })
	}
	leader := next(t, jobs.starts, "a leader")
	follower := 1 - leader
	// The precondition for "exactly one": the follower tried, and lost, while the leader ran.
	seen := losses[follower].Load()
	waitUntil(t, "the follower to try the lock twice more", func() bool { return losses[follower].Load() >= seen+2 })
	select {
	case i := <-jobs.starts:
		t.Fatalf("instance %d started the job while instance %d leads", i, leader)
	default:
	}

	// Kill the session that holds the lock, as a crash or a network cut would end it.
	pid := lockHolder(t, cfg, db.LockKey(cfg.Schema, "test.singleton"))
	admin, err := pgx.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if got := next(t, jobs.stops, "the deposed leader's job to stop"); got != leader {
		t.Fatalf("instance %d stopped, want the leader %d", got, leader)
	}
	if got := next(t, jobs.starts, "a new leader"); got != follower {
		t.Fatalf("instance %d took over, want %d", got, follower)
	}
	if jobs.overlap.Load() {
		t.Fatal("two instances ran the job at once")
	}
	for _, ws := range workers {
		if late := ws.Stop(5 * time.Second); len(late) > 0 {
			t.Fatalf("still running after stop: %v", late)
		}
	}
	// Stopping released the lock with the session: nobody holds it.
	if pid := lockHolderOrZero(t, cfg, db.LockKey(cfg.Schema, "test.singleton")); pid != 0 {
		t.Fatalf("backend %d still holds the lock after both instances stopped", pid)
	}
}

// On SQLite the process is always the leader: a single-replica job runs at once.
func TestSingleReplicaJobRunsOnSQLite(t *testing.T) {
	h := dbtest.Open(t, db.SQLite, "token")
	jobs := newJobLog()
	ws, err := StartWorkers(context.Background(), quietLog(), Background{Workers: []Worker{jobs.worker(0)}, Elector: db.ElectorFor(h, quietLog())})
	if err != nil {
		t.Fatal(err)
	}
	next(t, jobs.starts, "the job on SQLite")
	if late := ws.Stop(5 * time.Second); len(late) > 0 {
		t.Fatalf("still running: %v", late)
	}
	next(t, jobs.stops, "the job to stop")
}

// lockHolder returns the backend holding the advisory lock key (the query the elector's documentation
// gives operators).
func lockHolder(t *testing.T, cfg db.Config, key int64) int32 {
	t.Helper()
	pid := lockHolderOrZero(t, cfg, key)
	if pid == 0 {
		t.Fatal("no backend holds the leader lock")
	}
	return pid
}

func lockHolderOrZero(t *testing.T, cfg db.Config, key int64) int32 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), cfg.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var pids []int32
	rows, err := conn.Query(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2`, int64(uint64(key)>>32), int64(uint32(key)))
	if err != nil {
		t.Fatal(err)
	}
	pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	switch len(pids) {
	case 0:
		return 0
	case 1:
		return pids[0]
	}
	t.Fatalf("%d backends hold one advisory lock: %v", len(pids), pids)
	return 0
}
