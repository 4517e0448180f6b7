package storecopy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// SQLite reads from and writes to one SQLite database through conn, a single connection. A reader
// opens one read transaction (BeginSnapshot) so that every table is read as of the same moment.
type SQLite struct {
	conn *sql.Conn
	tx   *sql.Tx // the snapshot, when reading a live database
}

// NewSQLite works on conn, which it does not close.
func NewSQLite(conn *sql.Conn) *SQLite { return &SQLite{conn: conn} }

// BeginSnapshot starts the read transaction every later read runs in; End ends it.
func (s *SQLite) BeginSnapshot(ctx context.Context) error {
	tx, err := s.conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	// A deferred transaction takes its snapshot at its first read.
	if _, err := tx.ExecContext(ctx, "SELECT count(*) FROM sqlite_master"); err != nil {
		_ = tx.Rollback()
		return err
	}
	s.tx = tx
	return nil
}

// End ends the snapshot, if any.
func (s *SQLite) End() {
	if s.tx != nil {
		_ = s.tx.Rollback()
		s.tx = nil
	}
}

type sqlQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *SQLite) q() sqlQuerier {
	if s.tx != nil {
		return s.tx
	}
	return s.conn
}

// quote makes a name an SQL identifier (both dialects quote with double quotes).
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

func names(cols []Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// Columns implements Reader. Kinds are left for the other side to say, except BLOB.
func (s *SQLite) Columns(ctx context.Context, table string) ([]Column, error) {
	rows, err := s.q().QueryContext(ctx, "SELECT name, upper(type) FROM pragma_table_info(?) ORDER BY cid", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Column
	for rows.Next() {
		var c Column
		var typ string
		if err := rows.Scan(&c.Name, &typ); err != nil {
			return nil, err
		}
		if typ == "BLOB" {
			c.Kind = KindBytes
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// HighWater implements Reader: the larger of sqlite_sequence's entry and the largest id stored.
func (s *SQLite) HighWater(ctx context.Context, t Table) (int64, error) {
	if t.Identity == "" {
		return 0, nil
	}
	var hw int64
	err := s.q().QueryRowContext(ctx, "SELECT coalesce(max("+quote(t.Identity)+"), 0) FROM "+quote(t.Name)).Scan(&hw)
	if err != nil {
		return 0, err
	}
	var seq sql.NullInt64
	err = s.q().QueryRowContext(ctx, "SELECT seq FROM sqlite_sequence WHERE name = ?", t.Name).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) && !strings.Contains(err.Error(), "no such table") {
		return 0, err
	}
	return max(hw, seq.Int64), nil
}

// Rows implements Reader.
func (s *SQLite) Rows(ctx context.Context, t Table, cols []Column, fn func([]any) error) error {
	q := "SELECT " + quoteAll(names(cols)) + " FROM " + quote(t.Name) + " ORDER BY " + quoteAll(t.Key)
	rows, err := s.q().QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	raw := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		row := make([]any, len(cols))
		for i, c := range cols {
			v, err := canonical(c.Kind, raw[i])
			if err != nil {
				return fmt.Errorf("row %v, column %s: %w", keyOf(t, cols, raw), c.Name, err)
			}
			row[i] = v
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

// keyOf describes a row by its key, for an error message.
func keyOf(t Table, cols []Column, row []any) string {
	var parts []string
	for _, k := range t.Key {
		for i, c := range cols {
			if c.Name == k {
				parts = append(parts, fmt.Sprintf("%s=%v", k, row[i]))
			}
		}
	}
	return strings.Join(parts, ",")
}

// sqliteRowsPerInsert is how many rows one INSERT statement carries (bound by SQLite's 32766
// parameters: the widest table has about 25 columns).
const sqliteRowsPerInsert = 200

// Write implements Writer: multi-row INSERTs, all in one transaction per table.
func (s *SQLite) Write(ctx context.Context, t Table, cols []Column, hw int64, rows <-chan [][]any) (n int64, err error) {
	dcols, err := s.Columns(ctx, t.Name)
	if err != nil {
		return 0, err
	}
	insertCols, local := withLocal(t, cols, dcols)
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(insertCols)), ", ") + ")"
	stmtFor := func(k int) string {
		return "INSERT INTO " + quote(t.Name) + " (" + quoteAll(insertCols) + ") VALUES " +
			strings.TrimSuffix(strings.Repeat(one+", ", k), ", ")
	}
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := emptyTable(ctx, tx, quote(t.Name), t); err != nil {
		return 0, err
	}
	full, err := tx.PrepareContext(ctx, stmtFor(sqliteRowsPerInsert))
	if err != nil {
		return 0, err
	}
	defer full.Close()
	args := make([]any, 0, sqliteRowsPerInsert*len(insertCols))
	pending := 0
	flush := func(force bool) error {
		if pending == 0 || (!force && pending < sqliteRowsPerInsert) {
			return nil
		}
		var err error
		if pending == sqliteRowsPerInsert {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, stmtFor(pending), args...)
		}
		n += int64(pending)
		args, pending = args[:0], 0
		return err
	}
	for batch := range rows {
		for _, row := range batch {
			args = append(args, row...)
			args = append(args, local...)
			pending++
			if err := flush(false); err != nil {
				return n, fmt.Errorf("row %v: %w", keyOf(t, cols, row), err)
			}
		}
	}
	if err := flush(true); err != nil {
		return n, err
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	if t.Identity != "" {
		if err := setSQLiteHighWater(ctx, tx, t, hw); err != nil {
			return n, fmt.Errorf("set the %s sequence: %w", t.Identity, err)
		}
	}
	return n, tx.Commit()
}

// emptyTable removes the rows the migrations seeded in a Seeded table and refuses any other table that
// holds rows.
func emptyTable(ctx context.Context, tx interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, table string, t Table) error {
	if t.Seeded {
		_, err := tx.ExecContext(ctx, "DELETE FROM "+table)
		return err
	}
	var found bool
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+")").Scan(&found); err != nil {
		return err
	}
	if found {
		return errors.New("the target table is not empty")
	}
	return nil
}

// setSQLiteHighWater records hw as t's AUTOINCREMENT high-water mark.
func setSQLiteHighWater(ctx context.Context, s *sql.Tx, t Table, hw int64) error {
	// Only an AUTOINCREMENT table keeps a high-water mark; any other hands out the largest id + 1,
	// which the copied rows already fix.
	var def string
	if err := s.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", t.Name).Scan(&def); err != nil {
		return err
	}
	if !strings.Contains(strings.ToUpper(def), "AUTOINCREMENT") {
		return nil
	}
	res, err := s.ExecContext(ctx, "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", hw, t.Name)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 0 && hw > 0 {
		_, err = s.ExecContext(ctx, "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", t.Name, hw)
	}
	return err
}
