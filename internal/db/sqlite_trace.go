package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	sqlite3driver "github.com/ncruces/go-sqlite3/driver"
	"go.opentelemetry.io/otel/trace"

	"github.com/sergas/core/internal/tracing"
)

// openSQLite opens dsn with the registered driver, its connections wrapped by tracedConn. The wrapper
// keeps every interface the driver's connection offers to database/sql (and Raw, for code that reaches
// the SQLite connection), so that database/sql behaves exactly as without it.
func openSQLite(dsn string) (*sql.DB, error) {
	c, err := (&sqlite3driver.SQLite{}).OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(tracedConnector{Connector: c, tracer: tracing.Tracer(tracerName)}), nil
}

type tracedConnector struct {
	driver.Connector
	tracer trace.Tracer
}

func (c tracedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(sqlite3driver.Conn)
	if !ok {
		return dc, nil
	}
	return &tracedConn{Conn: sc, tracer: c.tracer}, nil
}

// tracedConn makes one span per transaction (begin to commit or rollback) and one per statement run
// outside a transaction. database/sql uses a connection from one goroutine at a time, so tx needs no
// lock.
type tracedConn struct {
	sqlite3driver.Conn
	tracer trace.Tracer
	// inTx is set while a transaction is open: its statements belong to its span.
	inTx bool
}

var (
	_ sqlite3driver.Conn       = (*tracedConn)(nil)
	_ driver.ExecerContext     = (*tracedConn)(nil)
	_ driver.NamedValueChecker = (*tracedConn)(nil)
)

func (c *tracedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.inTx = true
	_, span, ok := startStoreSpan(c.tracer, ctx, "sqlite", "TRANSACTION")
	if !ok {
		span = nil
	}
	return &tracedTx{Tx: tx, conn: c, span: span}, nil
}

func (c *tracedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ex, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	// The driver takes a statement with arguments through PrepareContext (it answers ErrSkip here), whose
	// span covers it; and ctx goes to the driver unchanged, since it recognises its own contexts by type
	// (Savepoint).
	if c.inTx || len(args) != 0 {
		return ex.ExecContext(ctx, query, args)
	}
	_, span, rec := c.statementSpan(ctx, query)
	res, err := ex.ExecContext(ctx, query, args)
	if rec {
		endStoreSpan(span, err)
	}
	return res, err
}

func (c *tracedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.PrepareContext(ctx, query)
	if err != nil || c.inTx {
		return st, err
	}
	// Wrapped even when nothing records now: a statement kept prepared (SQLiteDB's read statements) runs
	// again later, under other requests' spans.
	ts := &tracedStmt{Stmt: st, conn: c, op: operation(query)}
	_, ts.span, _ = c.statementSpan(ctx, query)
	return ts, nil
}

func (c *tracedConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *tracedConn) statementSpan(ctx context.Context, query string) (context.Context, trace.Span, bool) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil, false
	}
	return startStoreSpan(c.tracer, ctx, "sqlite", operation(query))
}

// tracedTx ends the transaction's span at commit or rollback.
type tracedTx struct {
	driver.Tx
	conn *tracedConn
	span trace.Span
}

func (t *tracedTx) Commit() error {
	err := t.Tx.Commit()
	t.done(err)
	return err
}

func (t *tracedTx) Rollback() error {
	err := t.Tx.Rollback()
	t.done(errors.New("rolled back"))
	return err
}

func (t *tracedTx) done(err error) {
	t.conn.inTx = false
	if t.span != nil {
		endStoreSpan(t.span, err)
		t.span = nil
	}
}

// tracedStmt is a statement prepared outside a transaction. Prepared under a recording span, that span
// covers the preparation and the first run (a query's span ends when its rows are ready, not when they
// are read), or ends at Close when it never ran; every later run outside a transaction under a
// recording span has a span of its own.
type tracedStmt struct {
	driver.Stmt
	conn *tracedConn
	op   string
	span trace.Span
}

// begin starts the span of a run, unless the preparation's span is still open or a transaction's span
// covers the run.
func (s *tracedStmt) begin(ctx context.Context) {
	if s.span == nil && !s.conn.inTx {
		_, s.span, _ = startStoreSpan(s.conn.tracer, ctx, "sqlite", s.op)
	}
}

var (
	_ driver.StmtExecContext   = (*tracedStmt)(nil)
	_ driver.StmtQueryContext  = (*tracedStmt)(nil)
	_ driver.NamedValueChecker = (*tracedStmt)(nil)
)

func (s *tracedStmt) end(err error) {
	if s.span != nil {
		endStoreSpan(s.span, err)
		s.span = nil
	}
}

func (s *tracedStmt) Close() error {
	s.end(nil)
	return s.Stmt.Close()
}

func (s *tracedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	ex, ok := s.Stmt.(driver.StmtExecContext)
	if !ok {
		return nil, errors.New("sqlite statement without ExecContext")
	}
	s.begin(ctx)
	res, err := ex.ExecContext(ctx, args)
	s.end(err)
	return res, err
}

func (s *tracedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.Stmt.(driver.StmtQueryContext)
	if !ok {
		return nil, errors.New("sqlite statement without QueryContext")
	}
	s.begin(ctx)
	rows, err := q.QueryContext(ctx, args)
	s.end(err)
	return rows, err
}

func (s *tracedStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}
