package sergasctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
)

func init() {
	register(&command{
		name:    "validate",
		summary: "check configuration, connectivity, schema, indexes, pragmas or pool, keys and a round trip; names each failure and its fix",
		usage: `validate [--service token|audit|webhook|all] [--json]

Checks, for each selected service: the configuration (every bad variable named); that its database
opens; that its schema version is the one this binary's migrations make; that every table, column and
index those migrations make is there as they make it; on SQLite, WAL journal mode, private file
permissions and the busy timeout; on PostgreSQL, the pool size against the server's connection limit;
that the keyring opens what is sealed (one stored secret per key id at least: token connections,
webhook channel tokens and push signing secrets) and the audit signing key loads and matches the
newest checkpoint; and a write, read and delete in a scratch table inside a transaction that is rolled
back. It changes nothing and is safe while the services run.

Exits 0 when every check passes (warnings allowed), 1 when one fails, 3 when a database cannot be
reached or opened.`,
		run: runValidate,
	})
}

// check is one finding of validate.
type check struct {
	Service string `json:"service"`
	Check   string `json:"check"`
	Status  string `json:"status"` // ok, warn or fail
	Detail  string `json:"detail"`
	Fix     string `json:"fix,omitempty"`
}

// report collects the checks of one run.
type report struct {
	Checks      []check `json:"checks"`
	unreachable bool
}

func (r *report) ok(svc, name, detail string) {
	r.Checks = append(r.Checks, check{Service: svc, Check: name, Status: "ok", Detail: detail})
}

func (r *report) warn(svc, name, detail, fix string) {
	r.Checks = append(r.Checks, check{Service: svc, Check: name, Status: "warn", Detail: detail, Fix: fix})
}

func (r *report) fail(svc, name, detail, fix string) {
	r.Checks = append(r.Checks, check{Service: svc, Check: name, Status: "fail", Detail: detail, Fix: fix})
}

func (r *report) count(status string) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == status {
			n++
		}
	}
	return n
}

func (r *report) exit() int {
	switch {
	case r.unreachable:
		return ExitUnreachable
	case r.count("fail") > 0:
		return ExitFailed
	}
	return ExitOK
}

func runValidate(ctx context.Context, c *cmdCtx) int {
	r := &report{Checks: []check{}}
	targets, err := loadTargets(c.env, c.opts.service)
	if err != nil {
		r.fail(c.opts.service, "configuration", err.Error(), "set the variables named as the README's configuration table says")
	} else {
		for _, t := range targets {
			r.ok(t.Name, "configuration", fmt.Sprintf("%s, %s", mode(t), t.DB.Redacted()))
			validateOne(ctx, r, t)
		}
	}
	return c.printReport("validate", r)
}

func mode(t *target) string {
	if t.Dev {
		return "development"
	}
	return "production"
}

func (c *cmdCtx) printReport(name string, r *report) int {
	code := r.exit()
	if c.opts.json {
		_ = writeJSON(c.Stdout, map[string]any{"checks": r.Checks, "ok": code == ExitOK, "exit_code": code})
		return code
	}
	for _, ch := range r.Checks {
		status := map[string]string{"ok": "ok", "warn": "WARN", "fail": "FAIL"}[ch.Status]
		fmt.Fprintf(c.Stdout, "%-8s %-4s  %-14s %s\n", ch.Service, status, ch.Check, ch.Detail)
		if ch.Fix != "" {
			fmt.Fprintf(c.Stdout, "%s\n", indent("fix: "+ch.Fix, strings.Repeat(" ", 30)))
		}
	}
	fmt.Fprintf(c.Stdout, "%s: %d ok, %d warning(s), %d failed\n", name, r.count("ok"), r.count("warn"), r.count("fail"))
	return code
}

func validateOne(ctx context.Context, r *report, t *target) {
	cn, err := openExisting(ctx, t)
	if err != nil {
		r.unreachable = true
		fix := "check the database settings (" + strings.ToUpper(t.Name) + "_DATABASE_URL, DATABASE_URL, DATA_DIR) and that the database server is up"
		if strings.Contains(err.Error(), "does not exist") {
			fix = "sergasctl setup --service " + t.Name + " if this is a new installation; otherwise " + fix
		}
		r.fail(t.Name, "connect", err.Error(), fix)
		return
	}
	defer cn.Close()
	r.ok(t.Name, "connect", serverVersion(ctx, cn))

	ms, downs, _, err := cn.migrations()
	if err != nil {
		r.fail(t.Name, "schema", err.Error(), "")
		return
	}
	st, err := readStatus(ctx, cn, ms, downs, nil)
	if err != nil {
		r.fail(t.Name, "schema", err.Error(), "")
		return
	}
	switch st.State {
	case "current":
		r.ok(t.Name, "schema", fmt.Sprintf("version %d, the newest this binary has", st.Version))
	case "behind":
		r.fail(t.Name, "schema", fmt.Sprintf("version %d, this binary needs %d (pending: %s)", st.Version, st.Latest, strings.Join(st.Pending, ", ")),
			fmt.Sprintf("sergasctl migrate up --service %s (or start the service with MIGRATE_ON_START=true)", t.Name))
	case "ahead":
		r.fail(t.Name, "schema", fmt.Sprintf("version %d, newer than this binary knows (%d)", st.Version, st.Latest),
			"use the sergasctl of the release that migrated the database")
	}
	missing, differ, extra, err := expectedSchema(ctx, cn, st.Version)
	switch {
	case err != nil:
		r.warn(t.Name, "indexes", "could not compare with the migrations: "+err.Error(), "")
	case len(missing)+len(differ) > 0:
		r.fail(t.Name, "indexes", "differs from what migrations 1.."+fmt.Sprint(st.Version)+" make: "+strings.Join(append(prefix("missing ", missing), prefix("changed ", differ)...), "; "),
			"recreate what is missing as the migration file under migrations/"+t.Name+"/"+string(t.DB.Dialect)+"/ does, or restore a backup; never edit the schema by hand")
	default:
		detail := "every table, column and index of the migrations is present"
		if len(extra) > 0 {
			detail += "; not made by the migrations: " + strings.Join(extra, ", ")
		}
		r.ok(t.Name, "indexes", detail)
	}
	if cn.SQLite != nil {
		checkSQLite(ctx, r, cn)
	} else {
		checkPool(ctx, r, cn)
	}
	checkKeys(ctx, r, cn)
	roundTrip(ctx, r, cn)
}

func prefix(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

func serverVersion(ctx context.Context, cn *conn) string {
	var v string
	if cn.SQLite != nil {
		_ = cn.SQLite.Read.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v)
		return fmt.Sprintf("%s (SQLite %s)", cn.t.DB.Redacted(), v)
	}
	_ = cn.SQL.QueryRowContext(ctx, "SHOW server_version").Scan(&v)
	return fmt.Sprintf("%s (PostgreSQL %s)", cn.t.DB.Redacted(), v)
}

// checkSQLite checks what the services rely on in the file itself: WAL (readers never wait for the
// writer, commits are durable at synchronous=NORMAL), permissions (the file holds sealed tokens and the
// audit log) and a busy timeout long enough for another process's write transaction.
func checkSQLite(ctx context.Context, r *report, cn *conn) {
	svc := cn.t.Name
	var journal string
	var pageSize, autoVacuum int
	q := cn.SQLite.Read
	if err := q.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
		r.fail(svc, "pragmas", "read journal_mode: "+err.Error(), "")
		return
	}
	_ = q.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize)
	_ = q.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&autoVacuum)
	detail := fmt.Sprintf("journal_mode=%s page_size=%d auto_vacuum=%d busy_timeout=%s", journal, pageSize, autoVacuum, cn.t.DB.SQLiteBusyTimeout)
	switch {
	case !strings.EqualFold(journal, "wal"):
		r.fail(svc, "pragmas", detail+": not in WAL mode, so readers wait for every write",
			"stop the services and run \"sergasctl setup --service "+svc+"\" (it opens the file as the services do, which sets WAL)")
	case cn.t.DB.SQLiteBusyTimeout < time.Second:
		r.warn(svc, "pragmas", detail+": a write from another process (a second service process, sergasctl) fails at once with \"database is locked\"",
			"set SQLITE_BUSY_TIMEOUT=5s (the default)")
	default:
		r.ok(svc, "pragmas", detail)
	}
	path := cn.SQLite.Path
	var loose []string
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			loose = append(loose, fmt.Sprintf("%s is %o", filepath.Base(p), fi.Mode().Perm()))
		}
	}
	if fi, err := os.Stat(filepath.Dir(path)); err == nil && fi.Mode().Perm()&0o077 != 0 {
		loose = append(loose, fmt.Sprintf("directory %s is %o", filepath.Dir(path), fi.Mode().Perm()))
	}
	if len(loose) > 0 {
		r.warn(svc, "permissions", "other users can read: "+strings.Join(loose, ", "),
			"chmod 600 the database files and chmod 700 their directory (the services do so at start where the directory is theirs alone)")
	} else {
		r.ok(svc, "permissions", "database files 0600 or stricter, directory private")
	}
}

// checkPool compares the pool the service will open with what the server allows.
func checkPool(ctx context.Context, r *report, cn *conn) {
	svc := cn.t.Name
	var maxConns, reserved, inUse int
	err := cn.SQL.QueryRowContext(ctx, `SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')`).Scan(&maxConns, &reserved, &inUse)
	if err != nil {
		r.warn(svc, "pool", "could not read the server's connection limits: "+err.Error(), "")
		return
	}
	c := cn.t.DB
	per := c.PoolSize + c.MaxOverflow
	avail := maxConns - reserved
	detail := fmt.Sprintf("DATABASE_POOL_SIZE=%d DATABASE_MAX_OVERFLOW=%d: up to %d connection(s) per service process; server max_connections=%d (%d reserved), %d in use now; pool timeout %s, recycle %s",
		c.PoolSize, c.MaxOverflow, per, maxConns, reserved, inUse, c.PoolTimeout, c.PoolRecycle)
	switch {
	case per > avail:
		r.fail(svc, "pool", detail+": one process alone may exceed the server's limit",
			"lower DATABASE_POOL_SIZE/DATABASE_MAX_OVERFLOW or raise max_connections")
	case 3*per > avail:
		r.warn(svc, "pool", detail+": the three services at full pool exceed the server's limit",
			"size DATABASE_POOL_SIZE+DATABASE_MAX_OVERFLOW times the processes of all services below max_connections, or put PgBouncer in front")
	default:
		r.ok(svc, "pool", detail)
	}
}

// roundTrip writes, reads and deletes a row in a scratch table inside a transaction that is rolled back:
// it proves the service's credentials can take the write lock and write in its schema, leaving nothing.
func roundTrip(ctx context.Context, r *report, cn *conn) {
	svc := cn.t.Name
	start := time.Now()
	err := func() error {
		tx, err := cn.SQL.BeginTx(ctx, nil) // SQLite: BEGIN IMMEDIATE, the write lock
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // always rolled back: the check leaves nothing behind
		table := fmt.Sprintf("sergasctl_roundtrip_%d", time.Now().UnixNano())
		if _, err := tx.ExecContext(ctx, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" (id, v) VALUES (1, $1)", "sergasctl"); err != nil {
			return err
		}
		var v string
		if err := tx.QueryRowContext(ctx, "SELECT v FROM "+table+" WHERE id = 1").Scan(&v); err != nil {
			return err
		}
		if v != "sergasctl" {
			return fmt.Errorf("read back %q, wrote %q", v, "sergasctl")
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE id = 1"); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d row(s) left after the delete", n)
		}
		return nil
	}()
	if err != nil {
		detail := "write, read and delete in a rolled-back transaction: " + err.Error()
		fix := "check that the database is writable by this user and has space"
		if cn.SQLite != nil && (errors.Is(err, sqlite3.BUSY) || errors.Is(err, sqlite3.LOCKED)) {
			detail = fmt.Sprintf("the write lock was not free within SQLITE_BUSY_TIMEOUT (%s)", cn.t.DB.SQLiteBusyTimeout)
			fix = fmt.Sprintf("a write transaction elsewhere lasted longer than that; processes with the file open: %s. Look for a stuck one, or raise SQLITE_BUSY_TIMEOUT",
				describeHolders(fileHolders(cn.SQLite.Path)))
		}
		r.fail(svc, "round trip", detail, fix)
		return
	}
	r.ok(svc, "round trip", fmt.Sprintf("write, read and delete in a rolled-back transaction took %s", time.Since(start).Round(time.Microsecond)))
}
