package sergasctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/migrations"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
)

// serviceNames are the services with a database, in the order commands visit them.
var serviceNames = []string{"token", "audit", "webhook"}

var serviceSet = map[string]struct{}{"token": {}, "audit": {}, "webhook": {}, "all": {}}

// target is one service's database and keys, found exactly as the service finds them: its LoadConfig.
type target struct {
	Name string
	DB   db.Config
	Dev  bool
	// Exactly one of these is set, by Name.
	Token   *token.Config
	Audit   *audit.Config
	Webhook *webhook.Config
}

// loadTargets reads the configuration of the services that which selects. Only those are read, so that
// an operator on the audit host is not asked for the token service's keys.
func loadTargets(env *config.Env, which string) ([]*target, error) {
	var ts []*target
	dev := app.Development(env)
	for _, name := range serviceNames {
		if which != "all" && which != name {
			continue
		}
		t := &target{Name: name, Dev: dev}
		switch name {
		case "token":
			c := token.LoadConfig(env)
			t.Token, t.DB = &c, c.DB
		case "audit":
			c := audit.LoadConfig(env)
			t.Audit, t.DB = &c, c.DB
		case "webhook":
			c := webhook.LoadConfig(env)
			t.Webhook, t.DB = &c, c.DB
		}
		ts = append(ts, t)
	}
	return ts, env.Err()
}

// unreachable marks an error that means something could not be reached or opened (ExitUnreachable).
type unreachable struct{ err error }

func (u *unreachable) Error() string { return u.err.Error() }
func (u *unreachable) Unwrap() error { return u.err }

func unreachablef(format string, a ...any) error { return &unreachable{fmt.Errorf(format, a...)} }

// exitFor is the exit code for a command that failed with err.
func exitFor(err error) int {
	var u *unreachable
	if errors.As(err, &u) {
		return ExitUnreachable
	}
	return ExitFailed
}

// conn is one opened service database.
type conn struct {
	t      *target
	SQLite *db.SQLiteDB   // set on SQLite
	PG     *db.PostgresDB // set on PostgreSQL
	// SQL is a database/sql handle for administrative statements: the SQLite writer or an adapter over
	// the PostgreSQL pool.
	SQL *sql.DB
}

// Close closes the database.
func (c *conn) Close() error {
	if c.PG != nil {
		c.SQL.Close()
		return c.PG.Close()
	}
	return c.SQLite.Close()
}

// migrations returns the binary's migrations of the connection's service and dialect.
func (c *conn) migrations() ([]migrate.Migration, map[int]string, migrate.Dialect, error) {
	return serviceMigrations(c.t.Name, c.t.DB.Dialect)
}

func serviceMigrations(service string, d db.Dialect) ([]migrate.Migration, map[int]string, migrate.Dialect, error) {
	dialect := migrate.SQLite
	if d == db.Postgres {
		dialect = migrate.Postgres
	}
	fsys, err := migrate.Sub(migrations.FS, service, string(d))
	if err != nil {
		return nil, nil, dialect, err
	}
	ms, err := migrate.Load(fsys)
	if err != nil {
		return nil, nil, dialect, err
	}
	downs, err := migrate.LoadDown(fsys)
	return ms, downs, dialect, err
}

// openExisting opens a database that setup made, changing nothing: a missing SQLite file or PostgreSQL
// schema is an error (run setup), never created. SQLite connections join the file's journal mode as the
// services left it; the reader pool is query-only, the writer takes its lock at BEGIN (a transaction
// that sergasctl rolls back, or migrations).
func openExisting(ctx context.Context, t *target) (*conn, error) {
	switch t.DB.Dialect {
	case db.SQLite:
		path, err := filepath.Abs(t.DB.SQLitePath)
		if err != nil {
			return nil, unreachablef("%s: sqlite path: %v", t.Name, err)
		}
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, unreachablef("%s: database file %s does not exist: run \"sergasctl setup\" (or start the service once)", t.Name, path)
			}
			return nil, unreachablef("%s: database file %s: %v", t.Name, path, err)
		}
		if err := privateSideFiles(path); err != nil {
			return nil, unreachablef("%s: %v", t.Name, err)
		}
		open := func(txlock string, readOnly bool, conns int) (*sql.DB, error) {
			d, err := sql.Open("sqlite3", sqliteDSN(path, t.DB, txlock, readOnly))
			if err != nil {
				return nil, err
			}
			d.SetMaxOpenConns(conns)
			if err := d.PingContext(ctx); err != nil {
				d.Close()
				return nil, err
			}
			return d, nil
		}
		w, err := open("immediate", false, 1)
		if err != nil {
			return nil, unreachablef("%s: open %s: %v", t.Name, path, err)
		}
		r, err := open("deferred", true, 2)
		if err != nil {
			w.Close()
			return nil, unreachablef("%s: open %s: %v", t.Name, path, err)
		}
		s := &db.SQLiteDB{Write: w, Read: r, Path: path}
		return &conn{t: t, SQLite: s, SQL: w}, nil
	case db.Postgres:
		if err := schemaExists(ctx, t.DB); err != nil {
			return nil, err
		}
		p, err := db.OpenPostgres(ctx, t.DB)
		if err != nil {
			return nil, unreachablef("%s: %v", t.Name, err)
		}
		return &conn{t: t, PG: p, SQL: stdlib.OpenDBFromPool(p.Pool)}, nil
	}
	return nil, fmt.Errorf("%s: unknown dialect %q", t.Name, t.DB.Dialect)
}

// openCreate opens the database as the service does (db.OpenSQLite, db.OpenPostgres): the data directory,
// the file with private permissions and WAL mode, or the schema, are made when missing.
func openCreate(ctx context.Context, t *target) (*conn, error) {
	switch t.DB.Dialect {
	case db.SQLite:
		s, err := db.OpenSQLite(ctx, t.DB)
		if err != nil {
			return nil, unreachablef("%s: %v", t.Name, err)
		}
		return &conn{t: t, SQLite: s, SQL: s.Write}, nil
	case db.Postgres:
		p, err := db.OpenPostgres(ctx, t.DB)
		if err != nil {
			return nil, unreachablef("%s: %s: %v", t.Name, t.DB.Redacted(), pgReason(ctx, t.DB, err))
		}
		return &conn{t: t, PG: p, SQL: stdlib.OpenDBFromPool(p.Pool)}, nil
	}
	return nil, fmt.Errorf("%s: unknown dialect %q", t.Name, t.DB.Dialect)
}

// sqliteDSN is the connection string sergasctl opens an existing file with: the services' busy timeout
// and cache, foreign keys on; journal mode left as the file has it.
func sqliteDSN(path string, c db.Config, txlock string, readOnly bool) string {
	q := url.Values{}
	q.Set("_txlock", txlock)
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", c.SQLiteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(on)")
	q.Add("_pragma", fmt.Sprintf("cache_size(%d)", c.SQLiteCacheSize))
	if readOnly {
		q.Add("_pragma", "query_only(on)")
	}
	return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
}

// schemaExists connects once and checks that the service's schema is there.
func schemaExists(ctx context.Context, c db.Config) error {
	pc, err := pgx.ParseConfig(c.PostgresURL)
	if err != nil {
		return unreachablef("invalid PostgreSQL connection string") // the parse error may quote the password
	}
	pc.RuntimeParams["application_name"] = "sergasctl"
	// A server that does not answer must not hang a script: wait as long as the services wait for a
	// connection from their pool.
	ctx, cancel := context.WithTimeout(ctx, c.PoolTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		// pgconn names the host, user and database in its message, never the password.
		return unreachablef("connect to %s: %v", c.Redacted(), err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", c.Schema).Scan(&ok); err != nil {
		return unreachablef("read %s: %v", c.Redacted(), err)
	}
	if !ok {
		return unreachablef("schema %s does not exist in %s: run \"sergasctl setup\" (or start the service once)", c.Schema, c.Redacted())
	}
	return nil
}

// pgReason explains a failed open: the pool's error is already a domain error without the driver's
// words, so connect once more for the reason an operator can act on.
func pgReason(ctx context.Context, c db.Config, err error) error {
	pc, perr := pgx.ParseConfig(c.PostgresURL)
	if perr != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.PoolTimeout)
	defer cancel()
	conn, cerr := pgx.ConnectConfig(ctx, pc)
	if cerr != nil {
		return cerr
	}
	conn.Close(ctx)
	return err
}

// privateSideFiles creates the WAL and its index, when missing, readable by this user only, before SQLite
// would create them with mode 0644: as the services do (internal/db), since the WAL holds the newest rows.
// SQLite starts from empty files as from none.
func privateSideFiles(path string) error {
	for _, p := range []string{path + "-wal", path + "-shm"} {
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("create %s: %w", filepath.Base(p), err)
		}
		f.Close()
	}
	return nil
}
