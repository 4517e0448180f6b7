package db

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxCachedStmts bounds the statements each of a SQLiteDB's pools keeps prepared: list queries are
// built from the filters a request sets and batch inserts from their row count, so there are a few
// dozen texts per store; a text beyond the bound is prepared for its one run, as before.
const maxCachedStmts = 256

// stmtCache keeps statements prepared on one pool, by text. Preparing (SQLite parsing and planning,
// inside WebAssembly) cost about a tenth of a ListEvents page's server time, and as much of a webhook
// ingest's. database/sql prepares a cached statement again on each connection that runs it, and
// SQLite prepares it again by itself after a schema change.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns query prepared on pool, or nil when the cache is full.
func (c *stmtCache) get(ctx context.Context, pool *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[query]; st != nil {
		return st, nil
	}
	if len(c.m) >= maxCachedStmts {
		return nil, nil
	}
	st, err := pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

// close closes the cached statements: SQLite does not close a connection that has statements.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

// queryRead runs a read query through the readers' statement cache.
func (s *SQLiteDB) queryRead(ctx context.Context, query string, args []any) (*sql.Rows, error) {
	st, err := s.reads.get(ctx, s.Read, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return s.Read.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// Prepared holds statements that WriteStmts prepared on the writer for one write transaction.
type Prepared struct {
	queries []string
	stmts   []*sql.Stmt // nil where the cache was full
}

// WriteStmts prepares queries on the writer (or finds them prepared) for a write transaction about to
// begin: call it before WriteTx, never inside one, since preparing takes the writer's one connection.
// Run them in the transaction with Prepared.Stmt.
func (s *SQLiteDB) WriteStmts(ctx context.Context, queries ...string) (Prepared, error) {
	p := Prepared{queries: queries, stmts: make([]*sql.Stmt, len(queries))}
	for i, q := range queries {
		st, err := s.writes.get(ctx, s.Write, q)
		if err != nil {
			return Prepared{}, SQLiteError(err)
		}
		p.stmts[i] = st
	}
	return p, nil
}

// Stmt returns query bound to tx: its prepared statement when p holds one, else query prepared in tx
// alone. Close it after use: that releases the binding, not the cached statement.
func (p Prepared) Stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	for i, q := range p.queries {
		if q == query && p.stmts[i] != nil {
			return tx.StmtContext(ctx, p.stmts[i]), nil
		}
	}
	return tx.PrepareContext(ctx, query)
}
