package db

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLeadershipLost is the cause of a leader's context when its lock is gone (the connection that held
// it dropped): the job must stop, since another replica may take over.
var ErrLeadershipLost = errors.New("leadership lost")

// errReleased is the cause when the leader gave leadership up itself.
var errReleased = errors.New("leadership released")

// Elector decides which of the processes sharing a database runs a job that must run on one replica
// only.
type Elector interface {
	// Lead blocks until this process leads job, or until ctx ends (returning ctx's error). The context it
	// returns is cancelled when leadership is lost (cause ErrLeadershipLost) and when ctx is; release
	// gives leadership up and must be called once the job has returned.
	Lead(ctx context.Context, job string) (lead context.Context, release func(), err error)
}

// ElectorFor returns the elector for h's backend: an advisory lock on PostgreSQL; on SQLite this process
// is always the leader (a SQLite file is served by one process).
func ElectorFor(h *Handle, log *slog.Logger) Elector {
	if h.Postgres != nil {
		return NewPostgresElector(h.Postgres, log)
	}
	return Sole{}
}

// Sole is the elector of a database only this process uses: it always leads at once.
type Sole struct{}

// Lead implements Elector.
func (Sole) Lead(ctx context.Context, _ string) (context.Context, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	lead, cancel := context.WithCancelCause(ctx)
	return lead, func() { cancel(errReleased) }, nil
}

// PostgresElector elects with a session-level advisory lock (pg_try_advisory_lock) held on a connection
// of its own, outside the pool: the lock lives exactly as long as that session, so a leader that crashes,
// is killed or loses its connection frees the job for another replica without any lease to expire.
//
// A deposed leader learns that its session is gone only at its next check; a new leader therefore waits
// Check+CheckTimeout after winning the lock before it reports leadership, so that the old one has
// stopped its job first (the server may kill a session, pg_terminate_backend, the instant before the old
// leader's next check). A deposed leader stands again only after Rejoin, so that a healthy replica takes
// over rather than the one whose connection just failed. The server itself is told to probe the client with TCP keepalives, so that a
// leader cut off by the network loses its session (and the lock) within about half a minute; it will
// have cancelled its job long before, after one failed check.
//
// The lock needs a real session: it does not work through a transaction-pooling proxy (PgBouncer in
// transaction mode). Jobs should still tolerate a rare overlap (a process paused longer than the
// takeover delay): the lock prevents duplicate work, the job's transactions keep it correct.
type PostgresElector struct {
	db  *PostgresDB
	log *slog.Logger
	// Retry is how often a follower tries to take the lock; Check how often a leader checks that its
	// connection (and so its lock) is alive, each check given CheckTimeout.
	Retry, Check, CheckTimeout time.Duration
	// Rejoin is how long a replica that lost leadership waits before standing again, so that another
	// replica (which found the lock free while this one was still noticing its loss) takes over.
	Rejoin time.Duration
	// OnTry, when set, is called after every attempt to take the lock (for tests and metrics).
	OnTry func(job string, won bool)
	// deposed holds, by job, when this process last lost leadership.
	deposed sync.Map
}

// NewPostgresElector returns an elector over p's database with production intervals.
func NewPostgresElector(p *PostgresDB, log *slog.Logger) *PostgresElector {
	return &PostgresElector{db: p, log: log, Retry: 5 * time.Second, Check: 2 * time.Second, CheckTimeout: 2 * time.Second,
		Rejoin: 15 * time.Second}
}

// LockKey is the advisory lock key of job in schema: the same for every replica of one service on one
// database, different for another service's schema (jobs of the same name do not block each other).
// Operators find the leader with:
//
//	SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
//	  AND classid::bigint = <key's high 32 bits> AND objid::bigint = <key's low 32 bits>
func LockKey(schema, job string) int64 {
	h := fnv.New64a()
	h.Write([]byte("sergas.worker\x00" + schema + "\x00" + job))
	return int64(h.Sum64())
}

// Lead implements Elector.
func (e *PostgresElector) Lead(ctx context.Context, job string) (context.Context, func(), error) {
	key := LockKey(e.db.Schema, job)
	if at, ok := e.deposed.LoadAndDelete(job); ok {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Until(at.(time.Time).Add(e.Rejoin))):
		}
	}
	failing := false
	for {
		conn, won, err := e.try(ctx, key)
		if e.OnTry != nil && ctx.Err() == nil {
			e.OnTry(job, won)
		}
		if err == nil && failing {
			failing = false
			if e.log != nil {
				e.log.Info("leader election: database reachable again", "job", job)
			}
		}
		switch {
		case ctx.Err() != nil:
		case err != nil:
			if !failing && e.log != nil {
				e.log.Warn("leader election: cannot reach the database; retrying", "job", job, "error", err.Error())
			}
			failing = true
		case won:
			// hold owns the connection from here: it closes it unless it returns a leader.
			if lead, release, ok := e.hold(ctx, conn, job); ok {
				return lead, release, nil
			}
			conn = nil
		}
		if conn != nil {
			// A follower keeps no connection open between attempts.
			closeConn(conn)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(jitter(e.Retry)):
		}
	}
}

// try opens a dedicated connection and tries the lock on it; the connection is returned when it holds
// the lock or when the caller must close it.
func (e *PostgresElector) try(ctx context.Context, key int64) (*pgx.Conn, bool, error) {
	cfg := e.db.Pool.Config().ConnConfig.Copy()
	// Have the server probe this client, so that a leader cut off by the network loses its session (and
	// the lock) in about 10+3*5 s rather than the operating system's default of hours.
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cctx, cancel := context.WithTimeout(ctx, e.CheckTimeout+e.Retry)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, false, PostgresError(err)
	}
	var won bool
	if err := conn.QueryRow(cctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&won); err != nil {
		return conn, false, PostgresError(err)
	}
	return conn, won, nil
}

// hold waits out the takeover delay on a connection that holds the lock, then returns the leader's
// context, watched by a goroutine that cancels it when a check fails. ok is false when the connection
// failed during the delay (it is then closed).
func (e *PostgresElector) hold(ctx context.Context, conn *pgx.Conn, job string) (context.Context, func(), bool) {
	delay := time.NewTimer(e.Check + e.CheckTimeout)
	defer delay.Stop()
	select {
	case <-ctx.Done():
		closeConn(conn)
		return nil, nil, false
	case <-delay.C:
	}
	if !e.alive(ctx, conn) {
		closeConn(conn)
		return nil, nil, false
	}
	lead, cancel := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		// Closing the session releases the lock; no explicit unlock is needed (and none could reach a
		// server that is gone).
		defer closeConn(conn)
		tick := time.NewTicker(e.Check)
		defer tick.Stop()
		for {
			select {
			case <-lead.Done():
				return
			case <-tick.C:
			}
			if !e.alive(lead, conn) {
				if lead.Err() == nil && e.log != nil {
					e.log.Warn("leader election: lost the connection that holds the lock; stopping the job", "job", job)
				}
				e.deposed.Store(job, time.Now())
				cancel(ErrLeadershipLost)
				return
			}
		}
	}()
	return lead, func() { cancel(errReleased); <-watched }, true
}

// alive checks the connection with a round trip.
func (e *PostgresElector) alive(ctx context.Context, conn *pgx.Conn) bool {
	pctx, cancel := context.WithTimeout(ctx, e.CheckTimeout)
	defer cancel()
	return conn.Ping(pctx) == nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// jitter spreads d over [d/2, d) so that replicas started together do not knock in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
