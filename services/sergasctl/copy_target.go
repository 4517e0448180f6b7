package sergasctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/internal/storecopy"
)

// stage is a copy's target being built aside: a schema <schema>_copying or a file <file>.copying, made
// by the migrations, filled, checked, and only then put in the target's place (swap). Until the swap
// the target is untouched; abandon removes what was built.
type stage struct {
	word    string  // what replaces the target: "copy" or "restore", in the kept-aside names
	t       *target // the target
	st      *target // the staging database
	exists  bool    // the target exists (a schema, a file)
	hasData bool    // ... and holds rows
	admin   *pgx.Conn
	conn    *conn
	pgConn  *pgxpool.Conn
	sqlConn *sql.Conn
	writer  storecopy.Writer
	swapped bool
}

func stagingName(t *target) string {
	if t.DB.Dialect == db.Postgres {
		return t.DB.Schema + "_copying"
	}
	return absPath(t.DB.SQLitePath) + ".copying"
}

// prepareTarget looks at the target: whether it exists and holds data. Unless dryRun, it also takes the
// target for this copy (PostgreSQL: an advisory lock, so two copies never build one staging schema;
// SQLite: no process may have the file open).
func prepareTarget(ctx context.Context, t *target, word string, dryRun bool) (*stage, error) {
	st := *t
	st.DB.AppName = "sergasctl" // not the service's name: a check for the service's connections must not see this
	s := &stage{t: t, st: &st, word: word}
	var err error
	if t.DB.Dialect == db.Postgres {
		st.DB.Schema = stagingName(t)
		if len(st.DB.Schema) > 63 {
			return nil, fmt.Errorf("schema name %s is too long for a staging schema beside it (%s)", t.DB.Schema, st.DB.Schema)
		}
		if s.admin, err = adminConn(ctx, t); err != nil {
			return nil, err
		}
		if !dryRun {
			var ok bool
			if err := s.admin.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext('sergas.copy.' || $1))", t.DB.Schema).Scan(&ok); err != nil {
				s.abandon(ctx)
				return nil, unreachablef("lock the target: %v", err)
			}
			if !ok {
				s.abandon(ctx)
				return nil, fmt.Errorf("another copy into schema %s is running", t.DB.Schema)
			}
		}
		if s.exists, s.hasData, err = pgHasData(ctx, s.admin, t); err != nil {
			s.abandon(ctx)
			return nil, unreachablef("read the target: %v", err)
		}
		return s, nil
	}
	path := absPath(t.DB.SQLitePath)
	st.DB.SQLitePath = stagingName(t)
	if _, err := os.Stat(path); err == nil {
		s.exists = true
		if hs := fileHolders(path); len(hs) > 0 && !dryRun {
			return nil, fmt.Errorf("processes have the target %s open: %s; stop them first", path, describeHolders(hs))
		}
		if s.hasData, err = sqliteHasData(ctx, path, t.Name); err != nil {
			return nil, unreachablef("read the target %s: %v", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, unreachablef("target %s: %v", path, err)
	}
	return s, nil
}

// adminConn is one connection to the target's PostgreSQL database, outside any service schema.
func adminConn(ctx context.Context, t *target) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(t.DB.PostgresURL)
	if err != nil {
		return nil, unreachablef("invalid PostgreSQL connection string") // the parse error may quote the password
	}
	pc.RuntimeParams["application_name"] = "sergasctl"
	cctx, cancel := context.WithTimeout(ctx, t.DB.PoolTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, pc)
	if err != nil {
		return nil, unreachablef("connect to %s: %v", t.DB.Redacted(), err)
	}
	return c, nil
}

// pgHasData says whether the target schema exists and whether any of the service's tables has rows.
func pgHasData(ctx context.Context, c *pgx.Conn, t *target) (exists, hasData bool, err error) {
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", t.DB.Schema).Scan(&exists); err != nil || !exists {
		return exists, false, err
	}
	for _, tb := range copySpecs[t.Name].Tables {
		if tb.Seeded {
			continue
		}
		var reg *string
		name := pgx.Identifier{t.DB.Schema, tb.Name}.Sanitize()
		if err := c.QueryRow(ctx, "SELECT to_regclass($1)::text", name).Scan(&reg); err != nil {
			return true, false, err
		}
		if reg == nil {
			continue
		}
		var found bool
		if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+name+")").Scan(&found); err != nil {
			return true, false, err
		}
		if found {
			return true, true, nil
		}
	}
	return true, false, nil
}

// sqliteHasData says whether any of the service's tables in the file at path has rows.
func sqliteHasData(ctx context.Context, path, service string) (bool, error) {
	d, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}).String())
	if err != nil {
		return false, err
	}
	defer d.Close()
	for _, tb := range copySpecs[service].Tables {
		if tb.Seeded {
			continue
		}
		var n int
		if err := d.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", tb.Name).Scan(&n); err != nil {
			return false, err
		}
		if n == 0 {
			continue
		}
		var found bool
		if err := d.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM "`+tb.Name+`")`).Scan(&found); err != nil {
			return false, err
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// build makes the staging database afresh (removing what a killed copy left) with the first version
// migrations (all when version is 0).
func (s *stage) build(ctx context.Context, version int) error {
	if s.t.DB.Dialect == db.Postgres {
		if _, err := s.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.st.DB.Schema}.Sanitize()+" CASCADE"); err != nil {
			return fmt.Errorf("remove the staging schema %s: %w", s.st.DB.Schema, err)
		}
	} else {
		removeSQLite(s.st.DB.SQLitePath)
	}
	cn, err := openCreate(ctx, s.st)
	if err != nil {
		return err
	}
	s.conn = cn
	ms, _, dialect, err := cn.migrations()
	if err != nil {
		return err
	}
	if version > 0 && version < len(ms) {
		ms = ms[:version]
	}
	if _, err := migrate.Up(ctx, cn.SQL, dialect, ms); err != nil {
		return fmt.Errorf("migrate the staging database: %w", err)
	}
	if cn.PG != nil {
		if s.pgConn, err = cn.PG.Acquire(ctx); err != nil {
			return err
		}
		s.writer = storecopy.NewPostgres(s.pgConn.Conn(), s.st.DB.Schema)
		return nil
	}
	if s.sqlConn, err = cn.SQLite.Write.Conn(ctx); err != nil {
		return err
	}
	s.writer = storecopy.NewSQLite(s.sqlConn)
	return nil
}

// releaseWriter gives the writer's connection back, so that the stores can use the staging database.
func (s *stage) releaseWriter() {
	if s.pgConn != nil {
		s.pgConn.Release()
		s.pgConn = nil
	}
	if s.sqlConn != nil {
		s.sqlConn.Close()
		s.sqlConn = nil
	}
}

// swap puts the staging database in the target's place in one step. A target with data is kept aside
// and its new name returned; an empty one (setup's) is removed.
func (s *stage) swap(ctx context.Context) (keptAside string, err error) {
	s.releaseWriter()
	if err := s.migrateRest(ctx); err != nil {
		return "", err
	}
	stamp := time.Now().UTC().Format(stampLayout)
	if s.t.DB.Dialect == db.Postgres {
		s.conn.Close()
		s.conn = nil
		tx, err := s.admin.Begin(ctx)
		if err != nil {
			return "", err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		target := pgx.Identifier{s.t.DB.Schema}.Sanitize()
		switch {
		case s.exists && s.hasData:
			keptAside = strings.ToLower(s.t.DB.Schema + "_before_" + s.word + "_" + stamp)
			_, err = tx.Exec(ctx, "ALTER SCHEMA "+target+" RENAME TO "+pgx.Identifier{keptAside}.Sanitize())
		case s.exists:
			_, err = tx.Exec(ctx, "DROP SCHEMA "+target+" CASCADE")
		}
		if err != nil {
			return "", fmt.Errorf("move the target aside: %w", err)
		}
		if _, err := tx.Exec(ctx, "ALTER SCHEMA "+pgx.Identifier{s.st.DB.Schema}.Sanitize()+" RENAME TO "+target); err != nil {
			return "", fmt.Errorf("put the copy in place: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return "", err
		}
		s.swapped = true
		return keptAside, nil
	}
	// SQLite: fold the WAL into the file, close it, and rename it over the target.
	if _, err := s.conn.SQL.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return "", fmt.Errorf("checkpoint the copy: %w", err)
	}
	if err := s.conn.Close(); err != nil {
		return "", err
	}
	s.conn = nil
	staging, path := s.st.DB.SQLitePath, absPath(s.t.DB.SQLitePath)
	if err := syncFile(staging); err != nil {
		return "", err
	}
	if s.exists {
		if hs := fileHolders(path); len(hs) > 0 {
			return "", fmt.Errorf("processes opened the target %s during the copy: %s; stop them and copy again", path, describeHolders(hs))
		}
		if s.hasData {
			keptAside = path + ".before-" + s.word + "-" + stamp
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Rename(path+suffix, keptAside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					return "", fmt.Errorf("move the target aside: %w", err)
				}
			}
		} else {
			removeSQLite(path)
		}
	}
	os.Remove(staging + "-wal")
	os.Remove(staging + "-shm")
	if err := os.Rename(staging, path); err != nil {
		return "", fmt.Errorf("put the copy in place: %w", err)
	}
	s.swapped = true
	return keptAside, syncDir(filepath.Dir(path))
}

// migrateRest applies the migrations build left out (a backup made by an older release).
func (s *stage) migrateRest(ctx context.Context) error {
	ms, _, dialect, err := s.conn.migrations()
	if err != nil {
		return err
	}
	if _, err := migrate.Up(ctx, s.conn.SQL, dialect, ms); err != nil {
		return fmt.Errorf("migrate the copy to this binary's schema: %w", err)
	}
	return nil
}

// abandon releases everything and, unless the swap happened, removes the staging database.
func (s *stage) abandon(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	s.releaseWriter()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	if !s.swapped && s.writer != nil {
		if s.t.DB.Dialect == db.Postgres {
			_, _ = s.admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.st.DB.Schema}.Sanitize()+" CASCADE")
		} else {
			removeSQLite(s.st.DB.SQLitePath)
		}
	}
	if s.admin != nil {
		s.admin.Close(ctx) // ends the session and its advisory lock
		s.admin = nil
	}
}

func removeSQLite(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
