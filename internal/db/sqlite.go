package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver"    // registers the "sqlite3" database/sql driver
	_ "github.com/ncruces/go-sqlite3/vfs/memdb" // registers the in-memory VFS

	"github.com/sergas/core/internal/errs"
)

// SQLiteDB is one SQLite file opened twice: a single writer connection, so that writers queue in Go
// instead of spinning on SQLITE_BUSY, and a pool of query-only connections that read concurrently
// under WAL.
type SQLiteDB struct {
	Write *sql.DB
	Read  *sql.DB
	Path  string
	// ckpt copies the WAL into the database file in the background (nil for in-memory databases).
	ckpt *checkpointer
	// reads and writes are the statements kept prepared on Read and on Write (sqlite_stmts.go).
	reads, writes stmtCache
}

// OpenSQLite opens (creating when needed) the file in c.SQLitePath.
func OpenSQLite(ctx context.Context, c Config) (*SQLiteDB, error) {
	memName, memory := strings.CutPrefix(c.SQLitePath, memoryPrefix)
	if !memory {
		path, err := filepath.Abs(c.SQLitePath)
		if err != nil {
			return nil, fmt.Errorf("sqlite path: %w", err)
		}
		c.SQLitePath = path
		if err := os.MkdirAll(filepath.Dir(c.SQLitePath), 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		log := c.Log
		if log == nil {
			log = slog.Default()
		}
		privateDir(filepath.Dir(c.SQLitePath), c.SQLitePath, log)
		if err := privateFiles(c.SQLitePath); err != nil {
			return nil, err
		}
	}
	dsn := func(txlock string, readOnly bool) string {
		q := url.Values{}
		q.Set("_txlock", txlock)
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", c.SQLiteBusyTimeout.Milliseconds()))
		q.Add("_pragma", "journal_mode(wal)")
		// NORMAL in WAL mode keeps every commit atomic and consistent across a process crash; only an OS
		// crash or power loss can roll back the last transactions. FULL would fsync on every commit.
		q.Add("_pragma", "synchronous(normal)")
		q.Add("_pragma", "foreign_keys(on)")
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", c.SQLiteCacheSize))
		if readOnly {
			q.Add("_pragma", "query_only(on)")
		} else {
			// The commit that takes the WAL past this many pages runs the checkpoint itself, holding the
			// write lock: two fsyncs and a copy of every page changed since the last one. SQLite's 1,000
			// pages (4 MB) made that every few hundred appends and it was the p99 of a lone writer. The
			// background checkpointer (sqlite_checkpoint.go) now does that work off the commit path;
			// this is its backstop, reached only if it falls behind by about 40 MB.
			q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", sqliteWALAutocheckpoint))
		}
		if memory {
			// memdb shares one in-memory database between this process's connections; it has no WAL,
			// so readers and the writer take turns.
			q.Set("vfs", "memdb")
			return (&url.URL{Scheme: "file", Path: "/" + memName, RawQuery: q.Encode()}).String()
		}
		return (&url.URL{Scheme: "file", Path: c.SQLitePath, RawQuery: q.Encode()}).String()
	}
	if !memory {
		// Opens of one file in this process take turns: switching a new database to WAL takes a lock
		// that SQLite does not wait for (a concurrent open fails with "database is locked"), and creating
		// the WAL index while another connection does fails with an I/O error.
		unlock := lockPath(c.SQLitePath)
		defer unlock()
	}
	w, err := openSQLite(dsn("immediate", false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The writer opens first so that WAL mode is set before any reader connects.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", c.SQLitePath, err)
	}
	r, err := openSQLite(dsn("deferred", true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite readers: %w", err)
	}
	r.SetMaxOpenConns(c.SQLiteReadConns)
	r.SetMaxIdleConns(c.SQLiteReadConns)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite readers: %w", err)
	}
	if !memory {
		// SQLite deletes a WAL it finds beside an empty database and makes a new one (mode 0666 less the
		// umask) when the first connection switches to WAL: restrict that one too.
		if err := privateFiles(c.SQLitePath); err != nil {
			w.Close()
			r.Close()
			return nil, err
		}
	}
	h := &SQLiteDB{Write: w, Read: r, Path: c.SQLitePath}
	if !memory {
		ck, err := sql.Open("sqlite3", dsn("deferred", false))
		if err != nil {
			w.Close()
			r.Close()
			return nil, fmt.Errorf("open sqlite checkpointer: %w", err)
		}
		ck.SetMaxOpenConns(1)
		ck.SetMaxIdleConns(1)
		ck.SetConnMaxIdleTime(0)
		h.ckpt = startCheckpointer(ck)
	}
	return h, nil
}

const memoryPrefix = "memory:"

// sqliteWALAutocheckpoint is the writer's wal_autocheckpoint, in pages (see OpenSQLite).
const sqliteWALAutocheckpoint = 10000

// openLocks serialises the opens of each SQLite file in this process (path → *sync.Mutex).
var openLocks sync.Map

func lockPath(path string) (unlock func()) {
	m, _ := openLocks.LoadOrStore(path, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// privateFiles creates the database file, its WAL and its shared-memory index readable by this user
// only, before SQLite opens them: the driver creates files with mode 0666 less the umask (0644 as a
// rule), and the files hold sealed tokens and the audit log. Files that exist already lose any group
// and other permission. A WAL or index of length zero is what SQLite itself starts from.
func privateFiles(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("create database file: %w", err)
		}
		fi, err := f.Stat()
		if err == nil && fi.Mode().Perm()&0o077 != 0 {
			err = f.Chmod(fi.Mode().Perm() &^ 0o077)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("restrict database file permissions: %w", err)
		}
	}
	return nil
}

// MemoryPath names an in-memory database for Config.SQLitePath: nothing is written to disk and the data
// is gone when the last connection closes.
func MemoryPath(name string) string { return memoryPrefix + name }

// Close stops the checkpointer and closes the pools; the writer last, so that it can checkpoint the WAL.
func (s *SQLiteDB) Close() error {
	var ck error
	if s.ckpt != nil {
		ck = s.ckpt.close()
	}
	return errors.Join(ck, s.reads.close(), s.writes.close(), s.Read.Close(), s.Write.Close())
}

// Ping checks that the file is still readable.
func (s *SQLiteDB) Ping(ctx context.Context) error {
	return s.Read.PingContext(ctx)
}

// WriteTx runs fn in an immediate transaction on the writer connection and commits when fn returns nil.
func (s *SQLiteDB) WriteTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.Write.BeginTx(ctx, nil)
	if err != nil {
		return SQLiteError(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return SQLiteError(tx.Commit())
}

// SQLiteError turns a driver error into a domain error; nil stays nil and domain errors pass through.
func SQLiteError(err error) error {
	var de *errs.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return errs.Wrap(errs.KindNotFound, err, "not found")
	case errors.Is(err, sqlite3.CONSTRAINT_UNIQUE), errors.Is(err, sqlite3.CONSTRAINT_PRIMARYKEY):
		return errs.Wrap(errs.KindAlreadyExists, err, "already exists")
	case errors.Is(err, sqlite3.BUSY), errors.Is(err, sqlite3.LOCKED):
		return errs.Wrap(errs.KindUnavailable, err, "database busy, retry")
	case errors.Is(err, sqlite3.FULL), errors.Is(err, sqlite3.IOERR), errors.Is(err, sqlite3.CANTOPEN):
		return errs.Wrap(errs.KindUnavailable, &outage{err}, "database unavailable")
	}
	return errs.Wrap(errs.KindInternal, err, "database error")
}
