package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/tools/bench/internal/auditload"
)

// seedPrincipal writes every seeded event (the bench key's principal).
const seedPrincipal = "apikey:bench"

// seeder makes the seeded store's events in sequence order, each sealed to the one before, exactly as
// the service would have appended them one by one: the store verifies from sequence 1 to n.
type seeder struct {
	n    int64
	i    int64
	hash []byte
	base time.Time
	e    store.Event
}

func newSeeder(n int64) *seeder {
	// Events 100 ms apart, ending about now.
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Duration(n) * 100 * time.Millisecond)
	return &seeder{n: n, hash: chain.Genesis, base: base}
}

// next returns the next event, or nil after the n-th. The event is reused by the following call.
func (s *seeder) next() *store.Event {
	if s.i >= s.n {
		return nil
	}
	s.i++
	i := s.i
	t := s.base.Add(time.Duration(i) * 100 * time.Millisecond)
	outcome := int32(1)
	if i%50 == 0 {
		outcome = 2
	}
	s.e = store.Event{
		ID: uuid.Must(uuid.NewV7()).String(), OccurTime: t, RecordTime: t,
		Actor: auditload.Actor(i), Action: "crm.deal.update", Resource: fmt.Sprintf("Deals/%d", i%5000), Outcome: outcome,
		Metadata: auditload.StoredMetadata, IdempotencyKey: fmt.Sprintf("seed-%d", i), Principal: seedPrincipal,
		ActorType: 1, SessionID: auditload.Session(i), RequestID: fmt.Sprintf("req-%d", i), SourceService: "agent-runtime",
	}
	s.e.Seal(i-1, s.hash)
	s.hash = s.e.Hash
	return &s.e
}

// seedInfo says how a seeded store was obtained.
type seedInfo struct {
	events  int64
	took    time.Duration // 0 when the cached store was used
	where   string
	version string // the database's name and version ("SQLite 3.50.4", "PostgreSQL 15.18")
}

// seedAudit makes sure the audit database described by env holds exactly n seeded events, seeding it
// when it does not (a store left half-seeded by an interrupted run is emptied and seeded again).
func seedAudit(ctx context.Context, env map[string]string, n int64) (seedInfo, error) {
	cfg := db.LoadConfig(config.FromMap(env), "audit")
	info := seedInfo{events: n, where: "schema " + cfg.Schema}
	if cfg.Dialect == db.SQLite {
		info.where = cfg.SQLitePath
		if head, err := sqliteHead(ctx, cfg.SQLitePath); err != nil || head != n {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(cfg.SQLitePath + suffix); err != nil && !os.IsNotExist(err) {
					return info, err
				}
			}
		}
	}
	// Opening migrates, as the server would: a store seeded before a new migration gets it too.
	h, err := db.Open(ctx, cfg, "audit", true)
	if err != nil {
		return info, err
	}
	defer func() { h.Close() }()
	var head int64
	if h.SQLite != nil {
		err = h.SQLite.Read.QueryRowContext(ctx, `SELECT 'SQLite ' || sqlite_version(), (SELECT sequence FROM chain_head)`).Scan(&info.version, &head)
	} else {
		err = h.Postgres.Pool.QueryRow(ctx, `SELECT 'PostgreSQL ' || current_setting('server_version'), (SELECT sequence FROM chain_head)`).Scan(&info.version, &head)
		info.version, _, _ = strings.Cut(info.version, " (") // PostgreSQL appends its build: "15.18 (Debian …)"
	}
	if err != nil || head == n {
		return info, err
	}
	start := time.Now()
	if h.SQLite != nil {
		err = seedSQLite(ctx, h.SQLite, n)
	} else {
		err = reseedPostgres(ctx, cfg, n)
	}
	info.took = time.Since(start)
	return info, err
}

// sqliteHead reads the chain head of an existing SQLite store without creating one.
func sqliteHead(ctx context.Context, path string) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	d, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	var head int64
	err = d.QueryRowContext(ctx, `SELECT sequence FROM chain_head`).Scan(&head)
	return head, err
}

// seedRows is how many events one multi-row INSERT writes (18 parameters each, far below SQLite's
// limit of 32,766).
const seedRows = 100

// seedSQLite writes n events into an empty, migrated store: the secondary indexes are dropped first and
// built again at the end from their own definitions (building an index once is cheaper than keeping it
// up to date row by row), the rows go in by multi-row INSERTs of one large transaction per million, and
// the chain head moves to the last event.
func seedSQLite(ctx context.Context, d *db.SQLiteDB, n int64) error {
	conn, err := d.Write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The wasm build of SQLite has a memory limit (256 MB): a cache of 100 MB stays well within it.
	for _, p := range []string{"PRAGMA synchronous=OFF", "PRAGMA cache_size=-100000"} {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			return err
		}
	}
	var defs []string
	rows, err := conn.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL`)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			rows.Close()
			return err
		}
		names, defs = append(names, name), append(defs, def)
	}
	rows.Close()
	for _, name := range names {
		if _, err := conn.ExecContext(ctx, `DROP INDEX "`+name+`"`); err != nil {
			return err
		}
	}
	const cols = `sequence, id, occur_time, record_time, actor, action, resource, outcome, metadata,
		idempotency_key, principal, hash_version, previous_hash, hash, actor_type, session_id, request_id, source_service`
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", 18), ", ") + ")"
	stmt, err := conn.PrepareContext(ctx, `INSERT INTO events (`+cols+`) VALUES `+strings.TrimSuffix(strings.Repeat(one+", ", seedRows), ", "))
	if err != nil {
		return err
	}
	defer stmt.Close()
	single, err := conn.PrepareContext(ctx, `INSERT INTO events (`+cols+`) VALUES `+one)
	if err != nil {
		return err
	}
	defer single.Close()
	s := newSeeder(n)
	args := make([]any, 0, 18*seedRows)
	add := func(e *store.Event) {
		args = append(args, e.Sequence, e.ID, e.OccurTime.UnixMicro(), e.RecordTime.UnixMicro(), e.Actor, e.Action, e.Resource,
			e.Outcome, e.Metadata, e.IdempotencyKey, e.Principal, e.HashVersion, e.PreviousHash, e.Hash,
			e.ActorType, e.SessionID, e.RequestID, e.SourceService)
	}
	progress := time.Now()
	for done := int64(0); done < n; {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		txStmt, txSingle := tx.StmtContext(ctx, stmt), tx.StmtContext(ctx, single)
		for end := min(n, done+1_000_000); done < end; {
			k := min(seedRows, end-done)
			if k == seedRows {
				args = args[:0]
				for range k {
					add(s.next())
				}
				if _, err := txStmt.ExecContext(ctx, args...); err != nil {
					tx.Rollback()
					return err
				}
			} else {
				for range k {
					args = args[:0]
					add(s.next())
					if _, err := txSingle.ExecContext(ctx, args...); err != nil {
						tx.Rollback()
						return err
					}
				}
			}
			done += k
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if time.Since(progress) > 10*time.Second {
			progress = time.Now()
			fmt.Fprintf(os.Stderr, "seed sqlite: %d of %d events\n", done, n)
		}
	}
	// Sorting 10 million keys for an index needs room of its own within that limit: a small page cache
	// leaves it (the sorter spills to temporary files beyond it).
	if _, err := conn.ExecContext(ctx, "PRAGMA cache_size=-16000"); err != nil {
		return err
	}
	for _, def := range defs {
		if _, err := conn.ExecContext(ctx, def); err != nil {
			return fmt.Errorf("rebuild index: %w", err)
		}
	}
	if _, err := conn.ExecContext(ctx, `UPDATE chain_head SET sequence = ?, hash = ? WHERE id = 1`, n, s.hash); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// reseedPostgres seeds n events into a new schema in place of cfg's: one half seeded by an interrupted
// run (its rows copied, its head not yet moved) cannot be emptied, since the append-only guards refuse it.
func reseedPostgres(ctx context.Context, cfg db.Config, n int64) error {
	dropSchema(cfg.PostgresURL, cfg.Schema)
	h, err := db.Open(ctx, cfg, "audit", true)
	if err != nil {
		return err
	}
	defer h.Close()
	return seedPostgres(ctx, h.Postgres, n)
}

// seedPostgres writes n events into a new, migrated schema: the secondary indexes that back no
// constraint are dropped and built again at the end from their definitions, the rows go in by COPY,
// the chain head moves to the last event, and ANALYZE gives the planner the statistics autovacuum would
// gather soon after.
func seedPostgres(ctx context.Context, d *db.PostgresDB, n int64) error {
	c, err := d.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()
	rows, err := conn.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND i.tablename = 'events'
		AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = current_schema()::regnamespace)`)
	if err != nil {
		return err
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			rows.Close()
			return err
		}
		names, defs = append(names, name), append(defs, def)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, name := range names {
		if _, err := conn.Exec(ctx, `DROP INDEX `+pgx.Identifier{name}.Sanitize()); err != nil {
			return err
		}
	}
	s := newSeeder(n)
	src := &copySource{s: s, progress: time.Now()}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"sequence", "id", "occur_time", "record_time", "actor", "action",
		"resource", "outcome", "metadata", "idempotency_key", "principal", "hash_version", "previous_hash", "hash", "actor_type",
		"session_id", "request_id", "source_service"}, src); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '512MB'`); err != nil {
		return err
	}
	for _, def := range defs {
		if _, err := conn.Exec(ctx, def); err != nil {
			return fmt.Errorf("rebuild index: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE chain_head SET sequence = $1, hash = $2 WHERE id = 1`, n, s.hash); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `ANALYZE events`)
	return err
}

// copySource feeds COPY from the seeder.
type copySource struct {
	s        *seeder
	e        *store.Event
	progress time.Time
}

func (c *copySource) Next() bool {
	c.e = c.s.next()
	if c.e != nil && time.Since(c.progress) > 10*time.Second {
		c.progress = time.Now()
		fmt.Fprintf(os.Stderr, "seed postgres: %d of %d events\n", c.e.Sequence, c.s.n)
	}
	return c.e != nil
}

func (c *copySource) Values() ([]any, error) {
	e := c.e
	return []any{e.Sequence, e.ID, e.OccurTime, e.RecordTime, e.Actor, e.Action, e.Resource, int16(e.Outcome),
		e.Metadata, e.IdempotencyKey, e.Principal, int16(e.HashVersion), e.PreviousHash, e.Hash,
		int16(e.ActorType), e.SessionID, e.RequestID, e.SourceService}, nil
}

func (c *copySource) Err() error { return nil }
