package db

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/sqlq"
)

// Scanner is a row that can be scanned: *sql.Row, *sql.Rows, pgx.Row and pgx.Rows all are.
type Scanner interface{ Scan(dest ...any) error }

// QueryAll runs a query on a database/sql handle and scans every row with scan; translate turns driver
// errors into domain errors.
func QueryAll[T any](ctx context.Context, d *sql.DB, translate func(error) error, query string, args []any, scan func(Scanner) (T, error)) ([]T, error) {
	rows, err := d.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	return collect(rows, scan, translate)
}

// SQLiteQueryAll runs a read query on the SQLite readers and scans every row with scan. Its $N
// placeholders are rebound to ?N (see sqlq.Rebind), so that they bind by number as on PostgreSQL.
func SQLiteQueryAll[T any](ctx context.Context, d *SQLiteDB, query string, args []any, scan func(Scanner) (T, error)) ([]T, error) {
	rows, err := d.queryRead(ctx, sqlq.Rebind(query), args)
	if err != nil {
		return nil, SQLiteError(err)
	}
	defer rows.Close()
	return collect(rows, scan, SQLiteError)
}

// PostgresQueryAll runs a query on a pooled connection and scans every row with scan.
func PostgresQueryAll[T any](ctx context.Context, d *PostgresDB, query string, args []any, scan func(Scanner) (T, error)) ([]T, error) {
	conn, err := d.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, PostgresError(err)
	}
	defer rows.Close()
	return collect(pgxRows{rows}, scan, PostgresError)
}

// PostgresQueryRow runs a single-row query on a pooled connection and scans it with scan.
func PostgresQueryRow[T any](ctx context.Context, d *PostgresDB, query string, args []any, scan func(Scanner) (T, error)) (T, error) {
	var zero T
	conn, err := d.Acquire(ctx)
	if err != nil {
		return zero, err
	}
	defer conn.Release()
	v, err := scan(conn.QueryRow(ctx, query, args...))
	if err != nil {
		return zero, PostgresError(err)
	}
	return v, nil
}

type rowIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

type pgxRows struct{ pgx.Rows }

func (r pgxRows) Scan(dest ...any) error { return r.Rows.Scan(dest...) }

var _ rowIter = (*sql.Rows)(nil)

func collect[T any](rows rowIter, scan func(Scanner) (T, error), translate func(error) error) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, translate(err)
		}
		out = append(out, v)
	}
	return out, translate(rows.Err())
}
