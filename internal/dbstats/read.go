// Package dbstats reads the figures an operator watches in a service's database (size, free pages,
// WAL, and each service's own: the audit chain head and newest checkpoint, the token connections that
// need re-authorisation) and exports them as Prometheus gauges read when scraped. sergasctl health reads
// them with the same functions, so that the command and the metrics cannot disagree.
package dbstats

import (
	"context"
	"database/sql"
	"fmt"
	"os"

	"github.com/sergas/core/internal/db"
	auditstore "github.com/sergas/core/services/audit/store"
	tokenstore "github.com/sergas/core/services/token/store"
)

// SQLite is the size of a SQLite database: the file, its pages and free pages (the freelist, which
// VACUUM returns to the file system), its journal mode and the WAL's size on disk.
type SQLite struct {
	FileBytes   int64
	PageSize    int64
	PageCount   int64
	FreePages   int64
	FreeBytes   int64
	JournalMode string
	WALBytes    int64
}

// ReadSQLite reads the pragmas on q (a reader: none of them writes) and stats the file and its WAL. An
// in-memory database has no file: its size is its pages.
func ReadSQLite(ctx context.Context, q *sql.DB, path string) (SQLite, error) {
	var s SQLite
	for _, p := range []struct {
		pragma string
		dst    any
	}{{"page_size", &s.PageSize}, {"page_count", &s.PageCount}, {"freelist_count", &s.FreePages}, {"journal_mode", &s.JournalMode}} {
		if err := q.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.dst); err != nil {
			return s, fmt.Errorf("PRAGMA %s: %w", p.pragma, err)
		}
	}
	s.FreeBytes = s.FreePages * s.PageSize
	s.FileBytes = s.PageCount * s.PageSize
	if fi, err := os.Stat(path); err == nil {
		s.FileBytes = fi.Size()
	}
	if fi, err := os.Stat(path + "-wal"); err == nil {
		s.WALBytes = fi.Size()
	}
	return s, nil
}

// Postgres is the size of a service's schema: its tables with their indexes and TOAST, and the
// statistics collector's estimates of live and dead rows (dead rows are what VACUUM reclaims).
// DatabaseBytes, the whole database's, is read only when asked for: it walks the database's files.
type Postgres struct {
	DatabaseBytes int64
	SchemaBytes   int64
	Tables        int
	LiveRows      int64
	DeadRows      int64
}

// ReadPostgres reads the sizes of p's schema (and of the database when withDatabase).
func ReadPostgres(ctx context.Context, p *db.PostgresDB, withDatabase bool) (Postgres, error) {
	var out Postgres
	err := p.Pool.QueryRow(ctx, `SELECT CASE WHEN $2 THEN pg_database_size(current_database()) ELSE 0 END,
		coalesce((SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p')), 0)::bigint,
		(SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = $1),
		coalesce((SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE schemaname = $1), 0)::bigint,
		coalesce((SELECT sum(n_dead_tup) FROM pg_stat_user_tables WHERE schemaname = $1), 0)::bigint`, p.Schema, withDatabase).
		Scan(&out.DatabaseBytes, &out.SchemaBytes, &out.Tables, &out.LiveRows, &out.DeadRows)
	if err != nil {
		return out, fmt.Errorf("read sizes: %w", err)
	}
	return out, nil
}

// Chain is the audit log's head, retention anchor and newest checkpoint (nil before the first).
type Chain struct {
	State auditstore.ChainState
	Last  *auditstore.Checkpoint
}

// ReadChain reads the chain head and the newest checkpoint through the audit store.
func ReadChain(ctx context.Context, st auditstore.Store) (Chain, error) {
	var c Chain
	var err error
	if c.State, err = st.ChainState(ctx); err != nil {
		return c, fmt.Errorf("read the chain head: %w", err)
	}
	last, err := st.CheckpointList(ctx, auditstore.CheckpointListParams{Limit: 1})
	if err != nil {
		return c, fmt.Errorf("read the newest checkpoint: %w", err)
	}
	if len(last) > 0 {
		c.Last = last[0]
	}
	return c, nil
}

// Connections counts the token connections by status; Reauthorize names the first ReauthorizeNames of
// those needing re-authorisation (provider/connection_id). Truncated is set when the count stopped at
// the page bound, so that the counts are a lower bound.
type Connections struct {
	Total, Active, NeedsReauthorization int
	Reauthorize                         []string
	Truncated                           bool
}

// ReauthorizeNames bounds Connections.Reauthorize.
const ReauthorizeNames = 100

const connectionPage = 500

// ReadConnections pages through the token store's connections, at most maxPages pages of 500.
func ReadConnections(ctx context.Context, st tokenstore.Store, maxPages int) (Connections, error) {
	c := Connections{Reauthorize: []string{}}
	var p tokenstore.ConnectionListParams
	p.Limit = connectionPage
	for i := range maxPages {
		page, err := st.ConnectionList(ctx, p)
		if err != nil {
			return c, fmt.Errorf("list connections: %w", err)
		}
		for _, cn := range page {
			c.Total++
			switch cn.Status {
			case tokenstore.StatusActive:
				c.Active++
			case tokenstore.StatusNeedsReauthorization:
				c.NeedsReauthorization++
				if len(c.Reauthorize) < ReauthorizeNames {
					c.Reauthorize = append(c.Reauthorize, cn.Provider+"/"+cn.ConnectionID)
				}
			}
		}
		if len(page) < p.Limit {
			break
		}
		if i == maxPages-1 {
			c.Truncated = true
		}
		last := page[len(page)-1]
		p.AfterProvider, p.AfterConnectionID = last.Provider, last.ConnectionID
	}
	return c, nil
}
