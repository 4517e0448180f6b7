package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/sergas/core/internal/errs"
)

// PostgresDB is a pgx pool whose connections use one service's schema.
type PostgresDB struct {
	Pool        *pgxpool.Pool
	Schema      string
	poolTimeout time.Duration
}

// OpenPostgres connects, creates the service's schema when missing and pins search_path to it.
func OpenPostgres(ctx context.Context, c Config) (*PostgresDB, error) {
	pc, err := pgxpool.ParseConfig(c.PostgresURL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("invalid PostgreSQL connection string")
	}
	pc.MaxConns = int32(c.PoolSize + c.MaxOverflow)
	pc.MinConns = 0
	pc.MinIdleConns = int32(c.PoolSize)
	// Connections beyond the steady pool are opened under burst and closed again once idle.
	pc.MaxConnIdleTime = 30 * time.Second
	pc.MaxConnLifetime = c.PoolRecycle
	pc.MaxConnLifetimeJitter = c.PoolRecycle / 10
	pc.ConnConfig.RuntimeParams["search_path"] = c.Schema
	pc.ConnConfig.Tracer = newPGTracer()
	if c.AppName != "" {
		pc.ConnConfig.RuntimeParams["application_name"] = c.AppName
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", PostgresError(err))
	}
	p := &PostgresDB{Pool: pool, Schema: c.Schema, poolTimeout: c.PoolTimeout}
	// Replicas starting together may race to create the schema; the advisory lock serialises them.
	err = p.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('sergas.schema.' || $1))", c.Schema); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{c.Schema}.Sanitize())
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("prepare schema %s: %w", c.Schema, err)
	}
	return p, nil
}

// Close closes the pool.
func (p *PostgresDB) Close() error { p.Pool.Close(); return nil }

// Ping checks that a connection can be had and answers.
func (p *PostgresDB) Ping(ctx context.Context) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return PostgresError(c.Ping(ctx))
}

// Acquire takes a connection, waiting at most DATABASE_POOL_TIMEOUT.
func (p *PostgresDB) Acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, p.poolTimeout)
	defer cancel()
	c, err := p.Pool.Acquire(actx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if connectionLost(err) {
			// The pool had to open a connection and could not reach the server: an outage, which health
			// reports at once, not a busy pool.
			return nil, errs.Wrap(errs.KindUnavailable, &outage{err}, "database unavailable")
		}
		return nil, errs.Wrap(errs.KindUnavailable, err, "no database connection available, retry")
	}
	return c, nil
}

// Tx runs fn in a READ COMMITTED transaction and commits when fn returns nil. The level is set on every
// transaction rather than taken from the server: a server or role configured with another
// default_transaction_isolation would otherwise change what the stores' algorithms can rely on.
func (p *PostgresDB) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.TxWith(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
}

// TxWith runs fn in a transaction with opts and commits when fn returns nil. An algorithm that needs
// another isolation level (REPEATABLE READ for a consistent snapshot, SERIALIZABLE) names it here.
func (p *PostgresDB) TxWith(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	if opts.IsoLevel == "" {
		opts.IsoLevel = pgx.ReadCommitted
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		return PostgresError(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return PostgresError(err)
	}
	return PostgresError(tx.Commit(ctx))
}

// connectionLost reports an error that means the connection is gone (the server crashed, was killed or
// restarted, or a network path broke) rather than that the statement was wrong: the caller may retry on
// a new connection, which the pool makes by itself once the server is back. "unexpected EOF" is what a
// connection killed mid-query returns.
func connectionLost(err error) bool {
	var ce *pgconn.ConnectError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, puddle.ErrClosedPool) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &ce)
}

// PostgresError turns a driver error into a domain error; nil stays nil and domain errors pass through.
func PostgresError(err error) error {
	var de *errs.Error
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, pgx.ErrNoRows):
		return errs.Wrap(errs.KindNotFound, err, "not found")
	case errors.As(err, &pe):
		switch {
		case pe.Code == "23505":
			return errs.Wrap(errs.KindAlreadyExists, err, "already exists")
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03":
			return errs.Wrap(errs.KindConflict, err, "concurrent update, retry")
		case pe.Code[:2] == "08", pe.Code[:2] == "53", pe.Code[:2] == "57":
			// connection exceptions, insufficient resources, operator intervention (shutdown)
			return errs.Wrap(errs.KindUnavailable, &outage{err}, "database unavailable")
		}
		return errs.Wrap(errs.KindInternal, err, "database error")
	case pgconn.SafeToRetry(err), pgconn.Timeout(err), connectionLost(err):
		return errs.Wrap(errs.KindUnavailable, &outage{err}, "database unavailable")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) {
		return errs.Wrap(errs.KindUnavailable, &outage{err}, "database unavailable")
	}
	return errs.Wrap(errs.KindInternal, err, "database error")
}
