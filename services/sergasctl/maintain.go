package sergasctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ncruces/go-sqlite3"
)

func init() {
	register(&command{
		name:    "maintain",
		summary: "optimize statistics, reclaim free pages, checkpoint the WAL, quick_check; VACUUM (ANALYZE) on PostgreSQL",
		usage: `maintain [--service token|audit|webhook|all] [--json] [--full]

On SQLite, for each selected service: PRAGMA optimize (ANALYZE of the tables whose statistics are
stale), PRAGMA incremental_vacuum when the file has auto_vacuum=incremental, a WAL checkpoint
(TRUNCATE) and PRAGMA quick_check; reports the file, free pages and WAL before and after.
With --full it runs VACUUM instead of incremental_vacuum: it rewrites the whole file and frees every
free page, but holds the write lock while it runs (the services' writes wait, up to their
SQLITE_BUSY_TIMEOUT, and fail after it), so run it when the services are quiet or stopped.
Without --full nothing holds the write lock for longer than a service's own commit.

On PostgreSQL: VACUUM (ANALYZE) of every table in the service's schema (no exclusive lock: the
services keep reading and writing); reports dead rows and sizes before and after. --full is not used
there (VACUUM FULL locks each table exclusively; run it by hand in a maintenance window).

Exits 0 when all is done and quick_check passes, 1 when a step or the check fails (a WAL checkpoint
kept short by a reader is a warning, not a failure), 3 when a database cannot be reached or opened.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.full, "full", false, "SQLite: VACUUM the whole file (holds the write lock while it runs)")
		},
		run: runMaintain,
	})
}

// sqliteSpace is a SQLite file's size, free pages and WAL at one moment.
type sqliteSpace struct {
	FileBytes int64 `json:"file_bytes"`
	PageSize  int64 `json:"page_size"`
	PageCount int64 `json:"page_count"`
	FreePages int64 `json:"free_pages"`
	WALBytes  int64 `json:"wal_bytes"`
}

// pgSpace is a PostgreSQL schema's size and dead rows at one moment.
type pgSpace struct {
	SchemaBytes int64 `json:"schema_bytes"`
	DeadRows    int64 `json:"dead_rows_estimate"`
	LiveRows    int64 `json:"live_rows_estimate"`
}

// maintainResult is what maintain reports for one service.
type maintainResult struct {
	Service  string `json:"service"`
	Database string `json:"database"`
	Dialect  string `json:"dialect"`
	Error    string `json:"error,omitempty"`
	// Steps are the statements run, in order, with how long each took.
	Steps []maintainStep `json:"steps"`
	// SQLite only.
	AutoVacuum      string       `json:"auto_vacuum,omitempty"`
	Before          *sqliteSpace `json:"before,omitempty"`
	After           *sqliteSpace `json:"after,omitempty"`
	FreedBytes      int64        `json:"freed_bytes"` // file + WAL, before less after
	Checkpoint      *checkpoint  `json:"wal_checkpoint,omitempty"`
	QuickCheck      []string     `json:"quick_check,omitempty"`
	PGBefore        *pgSpace     `json:"postgres_before,omitempty"`
	PGAfter         *pgSpace     `json:"postgres_after,omitempty"`
	Tables          int          `json:"tables,omitempty"`
	Warnings        []string     `json:"warnings"`
	Problems        []string     `json:"problems"`
	code            int
	freeAfterSimple bool
}

type maintainStep struct {
	Statement string  `json:"statement"`
	Seconds   float64 `json:"seconds"`
}

// checkpoint is PRAGMA wal_checkpoint's answer.
type checkpoint struct {
	// Busy is true when the checkpoint could not finish: a reader still needs part of the WAL.
	Busy         bool  `json:"busy"`
	LogFrames    int64 `json:"log_frames"`
	Checkpointed int64 `json:"checkpointed_frames"`
}

func runMaintain(ctx context.Context, c *cmdCtx) int {
	targets, err := loadTargets(c.env, c.opts.service)
	if err != nil {
		return c.configFail("maintain", err)
	}
	return eachService(ctx, c, targets, maintainOne, func(r *maintainResult) int { return r.code }, printMaintain)
}

func maintainOne(ctx context.Context, c *cmdCtx, t *target) *maintainResult {
	r := &maintainResult{Service: t.Name, Database: t.DB.Redacted(), Dialect: string(t.DB.Dialect),
		Steps: []maintainStep{}, Warnings: []string{}, Problems: []string{}}
	cn, err := openExisting(ctx, t)
	if err != nil {
		r.Error, r.code = err.Error(), exitFor(err)
		return r
	}
	defer cn.Close()
	if cn.SQLite != nil {
		err = maintainSQLite(ctx, c, cn, r)
	} else {
		err = maintainPG(ctx, c, cn, r)
	}
	if err != nil {
		r.Error, r.code = err.Error(), max(exitFor(err), ExitFailed)
	} else if len(r.Problems) > 0 {
		r.code = ExitFailed
	}
	return r
}

// step runs one statement on the writer, timed; a busy database is explained, never "database is locked".
func (r *maintainResult) step(ctx context.Context, cn *conn, stmt string) error {
	start := time.Now()
	_, err := cn.SQL.ExecContext(ctx, stmt)
	r.Steps = append(r.Steps, maintainStep{Statement: stmt, Seconds: time.Since(start).Seconds()})
	if err != nil {
		return explainBusy(cn, stmt, err)
	}
	return nil
}

// explainBusy turns SQLITE_BUSY into what the operator can act on: the timeout and who has the file open.
func explainBusy(cn *conn, what string, err error) error {
	if cn.SQLite != nil && (errors.Is(err, sqlite3.BUSY) || errors.Is(err, sqlite3.LOCKED)) {
		return fmt.Errorf("%s: the write lock was not free within SQLITE_BUSY_TIMEOUT (%s); processes with the file open: %s; retry when they are quiet, or raise SQLITE_BUSY_TIMEOUT",
			what, cn.t.DB.SQLiteBusyTimeout, describeHolders(fileHolders(cn.SQLite.Path)))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func readSQLiteSpace(ctx context.Context, cn *conn) (*sqliteSpace, error) {
	s := &sqliteSpace{}
	q := cn.SQL
	for _, p := range []struct {
		pragma string
		dst    *int64
	}{{"page_size", &s.PageSize}, {"page_count", &s.PageCount}, {"freelist_count", &s.FreePages}} {
		if err := q.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.dst); err != nil {
			return nil, explainBusy(cn, "PRAGMA "+p.pragma, err)
		}
	}
	if fi, err := os.Stat(cn.SQLite.Path); err == nil {
		s.FileBytes = fi.Size()
	}
	if fi, err := os.Stat(cn.SQLite.Path + "-wal"); err == nil {
		s.WALBytes = fi.Size()
	}
	return s, nil
}

func maintainSQLite(ctx context.Context, c *cmdCtx, cn *conn, r *maintainResult) error {
	var err error
	if r.Before, err = readSQLiteSpace(ctx, cn); err != nil {
		return err
	}
	var av int
	if err := cn.SQL.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&av); err != nil {
		return explainBusy(cn, "PRAGMA auto_vacuum", err)
	}
	r.AutoVacuum = map[int]string{0: "none", 1: "full", 2: "incremental"}[av]
	// analysis_limit bounds the rows ANALYZE reads per index, so optimize stays short on a large file;
	// 0x10002 analyses every table whose statistics are stale, as if the connection had run for long
	// (a fresh connection's plain optimize would look only at tables it had queried: none).
	for _, stmt := range []string{"PRAGMA analysis_limit=1000", "PRAGMA optimize=0x10002"} {
		if err := r.step(ctx, cn, stmt); err != nil {
			return err
		}
	}
	switch {
	case c.opts.full:
		if r.Before.PageCount*r.Before.PageSize >= longCheckBytes {
			fmt.Fprintf(c.Stderr, "%s: VACUUM rewrites all %s of %s and holds the write lock until it ends\n",
				cn.t.Name, bytes(r.Before.PageCount*r.Before.PageSize), cn.SQLite.Path)
		}
		if err := r.step(ctx, cn, "VACUUM"); err != nil {
			return err
		}
	case av == 2:
		if err := r.step(ctx, cn, "PRAGMA incremental_vacuum"); err != nil {
			return err
		}
	default:
		r.freeAfterSimple = true
	}
	cp := &checkpoint{}
	start := time.Now()
	var busy int
	err = cn.SQL.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &cp.LogFrames, &cp.Checkpointed)
	r.Steps = append(r.Steps, maintainStep{Statement: "PRAGMA wal_checkpoint(TRUNCATE)", Seconds: time.Since(start).Seconds()})
	if err != nil {
		return explainBusy(cn, "PRAGMA wal_checkpoint(TRUNCATE)", err)
	}
	cp.Busy = busy != 0
	r.Checkpoint = cp
	if cp.Busy {
		r.Warnings = append(r.Warnings, fmt.Sprintf("the WAL checkpoint could not finish (%d of %d frames copied): a reader or writer still needs it; processes with the file open: %s. It finishes on a later checkpoint",
			cp.Checkpointed, cp.LogFrames, describeHolders(fileHolders(cn.SQLite.Path))))
	}
	start = time.Now()
	rows, err := cn.SQL.QueryContext(ctx, "PRAGMA quick_check(100)")
	if err != nil {
		return explainBusy(cn, "PRAGMA quick_check", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return err
		}
		r.QuickCheck = append(r.QuickCheck, line)
	}
	rows.Close()
	r.Steps = append(r.Steps, maintainStep{Statement: "PRAGMA quick_check", Seconds: time.Since(start).Seconds()})
	if err := rows.Err(); err != nil {
		return explainBusy(cn, "PRAGMA quick_check", err)
	}
	if len(r.QuickCheck) != 1 || r.QuickCheck[0] != "ok" {
		r.Problems = append(r.Problems, fmt.Sprintf("quick_check found %d problem(s): restore the newest backup whose check passes", len(r.QuickCheck)))
	}
	if r.After, err = readSQLiteSpace(ctx, cn); err != nil {
		return err
	}
	r.FreedBytes = (r.Before.FileBytes + r.Before.WALBytes) - (r.After.FileBytes + r.After.WALBytes)
	if r.freeAfterSimple && r.After.FreePages > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d free page(s) (%s) stay in the file (auto_vacuum=none): SQLite reuses them for new rows; \"maintain --full\" returns them to the filesystem",
			r.After.FreePages, bytes(r.After.FreePages*r.After.PageSize)))
	}
	return nil
}

func readPGSpace(ctx context.Context, cn *conn) (*pgSpace, error) {
	p := &pgSpace{}
	err := cn.SQL.QueryRowContext(ctx, `SELECT
		coalesce((SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p')), 0)::bigint,
		coalesce((SELECT sum(n_dead_tup) FROM pg_stat_user_tables WHERE schemaname = $1), 0)::bigint,
		coalesce((SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE schemaname = $1), 0)::bigint`, cn.t.DB.Schema).
		Scan(&p.SchemaBytes, &p.DeadRows, &p.LiveRows)
	if err != nil {
		return nil, fmt.Errorf("read sizes: %w", err)
	}
	return p, nil
}

// maxTables bounds the tables maintain vacuums in one schema; a service has about ten.
const maxTables = 1000

func maintainPG(ctx context.Context, c *cmdCtx, cn *conn, r *maintainResult) error {
	var err error
	if c.opts.full {
		r.Warnings = append(r.Warnings, "--full is for SQLite; on PostgreSQL VACUUM FULL locks each table exclusively, so maintain runs VACUUM (ANALYZE)")
	}
	if r.PGBefore, err = readPGSpace(ctx, cn); err != nil {
		return err
	}
	rows, err := cn.SQL.QueryContext(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1 ORDER BY tablename LIMIT $2`,
		cn.t.DB.Schema, maxTables)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	for _, tbl := range tables {
		// The names come from format('%I'), quoted by the server.
		if err := r.step(ctx, cn, "VACUUM (ANALYZE) "+tbl); err != nil {
			return err
		}
	}
	r.Tables = len(tables)
	if r.PGAfter, err = readPGSpace(ctx, cn); err != nil {
		return err
	}
	return nil
}

func printMaintain(c *cmdCtx, r *maintainResult) {
	w := c.Stdout
	fmt.Fprintf(w, "%-8s %s\n", r.Service, r.Database)
	if r.Error != "" {
		fmt.Fprintf(w, "         FAILED: %s\n", r.Error)
		return
	}
	var total float64
	for _, s := range r.Steps {
		total += s.Seconds
	}
	if r.Before != nil {
		fmt.Fprintf(w, "         %d step(s) in %s (auto_vacuum %s)\n", len(r.Steps), time.Duration(total*float64(time.Second)).Round(time.Millisecond), r.AutoVacuum)
		fmt.Fprintf(w, "         file %s -> %s, free pages %d -> %d, WAL %s -> %s; freed %s\n",
			bytes(r.Before.FileBytes), bytes(r.After.FileBytes), r.Before.FreePages, r.After.FreePages,
			bytes(r.Before.WALBytes), bytes(r.After.WALBytes), bytes(max(r.FreedBytes, 0)))
		if r.Checkpoint != nil {
			fmt.Fprintf(w, "         wal_checkpoint(TRUNCATE): %d of %d frame(s) copied, busy=%v\n", r.Checkpoint.Checkpointed, r.Checkpoint.LogFrames, r.Checkpoint.Busy)
		}
		fmt.Fprintf(w, "         quick_check: %s\n", joinLines(r.QuickCheck))
	}
	if r.PGBefore != nil {
		fmt.Fprintf(w, "         VACUUM (ANALYZE) of %d table(s) in %s\n", r.Tables, time.Duration(total*float64(time.Second)).Round(time.Millisecond))
		fmt.Fprintf(w, "         schema %s -> %s, dead rows %d -> %d\n", bytes(r.PGBefore.SchemaBytes), bytes(r.PGAfter.SchemaBytes), r.PGBefore.DeadRows, r.PGAfter.DeadRows)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "         warning: %s\n", s)
	}
	for _, s := range r.Problems {
		fmt.Fprintf(w, "         PROBLEM: %s\n", s)
	}
}

func joinLines(ls []string) string {
	if len(ls) == 1 {
		return ls[0]
	}
	return fmt.Sprintf("%d line(s): %q", len(ls), ls)
}
