package sergasctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
)

// Scratch databases: bench never opens the services' own databases. It makes one database per service
// beside the configured one (a file in the same directory, so on the same disk; a schema in the same
// PostgreSQL database, so on the same server), brings it to the newest schema with the services'
// migrations, and removes it when it ends, also after an error or an interrupt (the cleanup runs on a
// context of its own). Only kill -9 can leave one behind: the names start with benchScratchPrefix.

// benchScratchPrefix starts every scratch file (after a dot) and schema bench makes.
const benchScratchPrefix = "sergasctl_bench_"

// benchCleanupTimeout bounds the removal of the scratch databases after the command's context ended.
const benchCleanupTimeout = 30 * time.Second

// scratchDB is one service's scratch database on one backend.
type scratchDB struct {
	service string
	cfg     db.Config
	h       *db.Handle
}

// scratchSet is the three services' scratch databases on one backend, and how to remove them.
type scratchSet struct {
	backend  db.Dialect
	where    string   // the directory or the server, for the operator
	names    []string // files or schemas made, removed by drop
	dbs      map[string]*scratchDB
	dropOnce bool
}

// newScratchID is a random suffix, so that two benches (or a leftover of a killed one) never collide.
func newScratchID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// benchBase is the configuration a service's scratch database on backend starts from: the service's own
// when it runs on that backend (same directory or server, same pool and pragma settings); otherwise the
// first service's that does, or for SQLite DATA_DIR. An error says what to configure.
func benchBase(targets []*target, service string, backend db.Dialect, dataDir string) (db.Config, error) {
	var own *target
	for _, t := range targets {
		if t.Name == service {
			own = t
		}
	}
	if own.DB.Dialect == backend {
		return own.DB, nil
	}
	for _, t := range targets {
		if t.DB.Dialect == backend {
			c := own.DB // this service's settings, another service's location
			c.Dialect, c.SQLitePath, c.PostgresURL = backend, t.DB.SQLitePath, t.DB.PostgresURL
			return c, nil
		}
	}
	if backend == db.SQLite {
		c := own.DB
		c.Dialect, c.SQLitePath = db.SQLite, filepath.Join(dataDir, service+".db")
		return c, nil
	}
	return db.Config{}, errors.New("no service is configured on PostgreSQL: set DATABASE_URL (or <SERVICE>_DATABASE_URL) to the server to measure")
}

// openScratch makes and migrates the scratch databases of the three services on backend. On an error
// the caller still calls drop, which removes whatever was made.
func openScratch(ctx context.Context, c *cmdCtx, targets []*target, backend db.Dialect, s *scratchSet) error {
	id := newScratchID()
	dataDir := c.env.String("DATA_DIR", "./data")
	s.backend, s.dbs = backend, map[string]*scratchDB{}
	for _, service := range serviceNames {
		cfg, err := benchBase(targets, service, backend, dataDir)
		if err != nil {
			return err
		}
		cfg.AppName = "sergasctl-bench"
		cfg.Log = c.log
		name := benchScratchPrefix + id + "_" + service
		switch backend {
		case db.SQLite:
			dir := filepath.Dir(cfg.SQLitePath)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				// Made here, it would be on a disk nobody chose and stay behind: refuse instead.
				return unreachablef("directory %s (the %s database's) does not exist: run \"sergasctl setup\", or set DATA_DIR to a directory on the disk to measure", dir, service)
			}
			cfg.SQLitePath = filepath.Join(dir, "."+name+".db")
			s.where = fmt.Sprintf("%s (files .%s%s_{token,audit,webhook}.db)", dir, benchScratchPrefix, id)
			s.names = append(s.names, cfg.SQLitePath)
		case db.Postgres:
			cfg.Schema = benchScratchPrefix + id + "_{token,audit,webhook}"
			s.where = cfg.Redacted()
			cfg.Schema = name
			s.names = append(s.names, name)
		}
		// Registered before it is made: a failed migration leaves a half-made database to remove.
		sd := &scratchDB{service: service, cfg: cfg}
		s.dbs[service] = sd
		h, err := db.Open(ctx, cfg, service, true)
		if err != nil {
			return unreachablef("%s scratch database on %s: %v", service, backend, err)
		}
		sd.h = h
	}
	return nil
}

// drop closes and removes every scratch database of s, on a context of its own so that it runs after
// an interrupt too. It returns the first failure, naming what is left for the operator to remove.
func (s *scratchSet) drop(ctx context.Context) error {
	if s.dropOnce {
		return nil
	}
	s.dropOnce = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), benchCleanupTimeout)
	defer cancel()
	var errsOut []error
	for _, service := range serviceNames {
		sd := s.dbs[service]
		if sd == nil {
			continue
		}
		if sd.h != nil {
			if err := sd.h.Close(); err != nil {
				errsOut = append(errsOut, err)
			}
		}
		switch s.backend {
		case db.SQLite:
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				if err := os.Remove(sd.cfg.SQLitePath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					errsOut = append(errsOut, fmt.Errorf("remove %s: %w", sd.cfg.SQLitePath+suffix, err))
				}
			}
		case db.Postgres:
			if err := dropSchema(ctx, sd.cfg); err != nil {
				errsOut = append(errsOut, fmt.Errorf("drop schema %s in %s: %w (remove it by hand: DROP SCHEMA %s CASCADE)",
					sd.cfg.Schema, sd.cfg.Redacted(), err, sd.cfg.Schema))
			}
		}
	}
	return errors.Join(errsOut...)
}

// dropSchema removes a scratch schema with everything in it.
func dropSchema(ctx context.Context, c db.Config) error {
	pc, err := pgx.ParseConfig(c.PostgresURL)
	if err != nil {
		return errors.New("invalid PostgreSQL connection string")
	}
	pc.RuntimeParams["application_name"] = "sergasctl-bench"
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{c.Schema}.Sanitize()+" CASCADE")
	return err
}
