// Package db opens the two storage backends: an embedded SQLite file (one writer connection beside a
// pool of read-only connections) and a PostgreSQL connection pool with one schema per service.
package db

import (
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sergas/core/internal/config"
)

// Dialect names a storage backend.
type Dialect string

// The supported backends.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Config says where a service's data lives and how to connect.
type Config struct {
	Dialect Dialect
	// SQLitePath is the database file (SQLite only).
	SQLitePath string
	// PostgresURL is the connection string (PostgreSQL only). It may hold a password: never log it.
	PostgresURL string
	// Schema is the PostgreSQL schema that holds this service's tables.
	Schema string
	// AppName is reported to PostgreSQL as application_name.
	AppName string

	SQLiteCacheSize   int
	SQLiteBusyTimeout time.Duration
	SQLiteReadConns   int

	PoolSize    int
	MaxOverflow int
	PoolTimeout time.Duration
	PoolRecycle time.Duration

	// Log receives warnings about the data directory (nil: slog.Default()).
	Log *slog.Logger
}

// Redacted describes the target without credentials, for logs.
func (c Config) Redacted() string {
	if c.Dialect == SQLite {
		return "sqlite:" + c.SQLitePath
	}
	u, err := url.Parse(c.PostgresURL)
	if err != nil {
		return "postgres (unparseable URL)"
	}
	return fmt.Sprintf("postgres://%s/%s (schema %s)", u.Host, strings.TrimPrefix(u.Path, "/"), c.Schema)
}

// LoadConfig reads the database settings of one service (token, audit, webhook) from env.
//
// The URL comes from <SERVICE>_DATABASE_URL, then DATABASE_URL, then the DATABASE_HOST/PORT/NAME/USER/
// PASSWORD form, then defaults to a SQLite file DATA_DIR/<service>.db. A DATABASE_URL shared by all
// services that points at SQLite gets the service name appended to the file name, so that each service
// still owns its own file.
func LoadConfig(env *config.Env, service string) Config {
	prefix := strings.ToUpper(service) + "_"
	c := Config{
		Schema:            env.String(prefix+"DATABASE_SCHEMA", service),
		AppName:           "sergas-" + service,
		SQLiteCacheSize:   env.Int("SQLITE_CACHE_SIZE", -64000, -1<<30, 1<<30),
		SQLiteBusyTimeout: env.Duration("SQLITE_BUSY_TIMEOUT", 5*time.Second, 0, time.Hour),
		SQLiteReadConns:   env.Int("SQLITE_READ_CONNECTIONS", max(4, 2*runtime.NumCPU()), 1, 256),
		PoolSize:          env.Int("DATABASE_POOL_SIZE", 10, 1, 1000),
		MaxOverflow:       env.Int("DATABASE_MAX_OVERFLOW", 10, 0, 1000),
		PoolTimeout:       env.Duration("DATABASE_POOL_TIMEOUT", 30*time.Second, time.Millisecond, time.Hour),
		PoolRecycle:       env.Duration("DATABASE_POOL_RECYCLE", time.Hour, time.Second, 7*24*time.Hour),
	}
	if !validSchema(c.Schema) {
		env.Fail(prefix+"DATABASE_SCHEMA", "must be lower-case letters, digits and '_', starting with a letter")
	}
	dataDir := env.String("DATA_DIR", "./data")
	name, raw, ok := prefix+"DATABASE_URL", "", false
	if raw, ok = env.Lookup(name); !ok {
		if raw, ok = env.Lookup("DATABASE_URL"); ok {
			name = "DATABASE_URL"
		}
	}
	switch {
	case ok:
		c.parseURL(env, name, raw, service, name == "DATABASE_URL")
	case hasAny(env, "DATABASE_HOST"):
		c.Dialect = Postgres
		c.PostgresURL = hostFormURL(env)
	default:
		c.Dialect = SQLite
		c.SQLitePath = filepath.Join(dataDir, service+".db")
	}
	return c
}

func (c *Config) parseURL(env *config.Env, name, raw, service string, shared bool) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		c.Dialect = SQLite
		p := strings.TrimPrefix(raw, "sqlite://")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		if p == "" || p == "/" {
			env.Fail(name, "must name a file, as sqlite:///path/to/file.db or sqlite://relative/file.db")
			return
		}
		// sqlite:///abs/file keeps its leading slash; sqlite://rel/file is relative to the working directory.
		if shared {
			ext := filepath.Ext(p)
			p = strings.TrimSuffix(p, ext) + "-" + service + ext
		}
		c.SQLitePath = filepath.Clean(p)
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			env.Fail(name, "is not a valid postgres:// URL")
			return
		}
		c.Dialect = Postgres
		c.PostgresURL = raw
	default:
		env.Fail(name, "must start with sqlite:// or postgres://")
	}
}

func hostFormURL(env *config.Env) string {
	u := url.URL{
		Scheme: "postgres",
		Host:   env.String("DATABASE_HOST", "") + ":" + strconv.Itoa(env.Int("DATABASE_PORT", 5432, 1, 65535)),
		Path:   "/" + env.String("DATABASE_NAME", "sergas"),
	}
	user := env.String("DATABASE_USER", "sergas")
	if pw, ok := env.Lookup("DATABASE_PASSWORD"); ok {
		u.User = url.UserPassword(user, pw)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

func hasAny(env *config.Env, names ...string) bool {
	for _, n := range names {
		if _, ok := env.Lookup(n); ok {
			return true
		}
	}
	return false
}

func validSchema(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
