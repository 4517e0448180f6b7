package db

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxReadStmts bounds the read statements a SQLiteDB keeps prepared: list queries are built from the
// filters a request sets, so there are a few dozen texts per store; a text beyond the bound is
// prepared for its one run, as before.
const maxReadStmts = 256

// readStmts keeps read queries prepared on the reader pool, by text. Preparing a list query (SQLite
// parsing and planning it, inside WebAssembly) cost about a tenth of a ListEvents page's server time.
// database/sql prepares a cached statement again on each reader connection that runs it, and SQLite
// prepares it again by itself after a schema change.
type readStmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// readStmt returns query prepared on the readers, or nil when the cache is full.
func (s *SQLiteDB) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	if st := s.reads.m[query]; st != nil {
		return st, nil
	}
	if len(s.reads.m) >= maxReadStmts {
		return nil, nil
	}
	st, err := s.Read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if s.reads.m == nil {
		s.reads.m = map[string]*sql.Stmt{}
	}
	s.reads.m[query] = st
	return st, nil
}

// closeReadStmts closes the cached statements: SQLite does not close a connection that has statements.
func (s *SQLiteDB) closeReadStmts() error {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	var errs []error
	for _, st := range s.reads.m {
		errs = append(errs, st.Close())
	}
	s.reads.m = nil
	return errors.Join(errs...)
}

// queryRead runs a read query through the statement cache.
func (s *SQLiteDB) queryRead(ctx context.Context, query string, args []any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return s.Read.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}
