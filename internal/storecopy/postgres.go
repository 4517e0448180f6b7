package storecopy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Postgres reads from and writes to one schema through conn. A reader opens one REPEATABLE READ, READ
// ONLY transaction (BeginSnapshot) so that every table is read as of the same moment.
type Postgres struct {
	conn   *pgx.Conn
	schema string
	tx     pgx.Tx
}

// NewPostgres works on schema through conn, which it does not close.
func NewPostgres(conn *pgx.Conn, schema string) *Postgres {
	return &Postgres{conn: conn, schema: schema}
}

// BeginSnapshot starts the read transaction every later read runs in; End ends it.
func (p *Postgres) BeginSnapshot(ctx context.Context) error {
	tx, err := p.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	p.tx = tx
	return nil
}

// End ends the snapshot, if any.
func (p *Postgres) End(ctx context.Context) {
	if p.tx != nil {
		_ = p.tx.Rollback(ctx)
		p.tx = nil
	}
}

type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (p *Postgres) q() pgQuerier {
	if p.tx != nil {
		return p.tx
	}
	return p.conn
}

func (p *Postgres) table(name string) string { return quote(p.schema) + "." + quote(name) }

// Columns implements Reader.
func (p *Postgres) Columns(ctx context.Context, table string) ([]Column, error) {
	rows, err := p.q().Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, p.schema, table)
	if err != nil {
		return nil, err
	}
	var out []Column
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		k, err := pgKind(typ)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", table, name, err)
		}
		out = append(out, Column{Name: name, Kind: k})
		return nil
	})
	return out, err
}

// HighWater implements Reader: the larger of the identity sequence's last value and the largest id.
func (p *Postgres) HighWater(ctx context.Context, t Table) (int64, error) {
	if t.Identity == "" {
		return 0, nil
	}
	var hw int64
	err := p.q().QueryRow(ctx, `SELECT greatest(
			coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass), 0),
			coalesce((SELECT max(`+quote(t.Identity)+`) FROM `+p.table(t.Name)+`), 0))`,
		p.table(t.Name), t.Identity).Scan(&hw)
	return hw, err
}

// Rows implements Reader. Text keys sort in byte order (COLLATE "C"), as SQLite sorts them, so that
// both sides hash rows in the same order.
func (p *Postgres) Rows(ctx context.Context, t Table, cols []Column, fn func([]any) error) error {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = quote(c.Name)
		if c.Kind == KindJSON || c.Kind == KindUUID {
			sel[i] += "::text"
		}
	}
	order := make([]string, len(t.Key))
	for i, k := range t.Key {
		order[i] = quote(k)
		for _, c := range cols {
			if c.Name == k && c.Kind == KindText {
				order[i] += ` COLLATE "C"`
			}
		}
	}
	rows, err := p.q().Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+p.table(t.Name)+" ORDER BY "+strings.Join(order, ", "))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		raw, err := rows.Values()
		if err != nil {
			return err
		}
		row := make([]any, len(cols))
		for i, c := range cols {
			v := raw[i]
			switch x := v.(type) { // the integer types decode to their own widths
			case int16:
				v = int64(x)
			case int32:
				v = int64(x)
			}
			if row[i], err = canonical(c.Kind, v); err != nil {
				return fmt.Errorf("row %v, column %s: %w", keyOf(t, cols, raw), c.Name, err)
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Write implements Writer: one COPY in one transaction per table. The table's indexes other than its
// constraints' are dropped first and built again after the rows are in (as pg_restore does): building
// an index once is cheaper than updating it for every row. A failure rolls all of it back.
func (p *Postgres) Write(ctx context.Context, t Table, cols []Column, hw int64, rows <-chan [][]any) (int64, error) {
	dcols, err := p.Columns(ctx, t.Name)
	if err != nil {
		return 0, err
	}
	copyCols, local := withLocal(t, cols, dcols)
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if t.Seeded {
		if _, err := tx.Exec(ctx, "DELETE FROM "+p.table(t.Name)); err != nil {
			return 0, err
		}
	} else {
		var found bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+p.table(t.Name)+")").Scan(&found); err != nil {
			return 0, err
		}
		if found {
			return 0, errors.New("the target table is not empty")
		}
	}
	idx, err := secondaryIndexes(ctx, tx, p.schema, t.Name)
	if err != nil {
		return 0, err
	}
	for _, ix := range idx {
		if _, err := tx.Exec(ctx, "DROP INDEX "+quote(p.schema)+"."+quote(ix.name)); err != nil {
			return 0, err
		}
	}
	src := &copySource{ctx: ctx, rows: rows, cols: cols, local: local}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{p.schema, t.Name}, copyCols, src)
	if err != nil {
		if src.cur != nil {
			return n, fmt.Errorf("near row %v: %w", keyOf(t, cols, src.cur), err)
		}
		return n, err
	}
	for _, ix := range idx {
		if _, err := tx.Exec(ctx, ix.def); err != nil {
			return n, fmt.Errorf("rebuild index %s: %w", ix.name, err)
		}
	}
	if t.Identity != "" && hw > 0 { // a fresh sequence starts at 1
		if _, err := tx.Exec(ctx, "SELECT setval(pg_get_serial_sequence($1, $2), $3, true)", p.table(t.Name), t.Identity, hw); err != nil {
			return n, fmt.Errorf("set the %s sequence: %w", t.Identity, err)
		}
	}
	return n, tx.Commit(ctx)
}

type index struct{ name, def string }

// secondaryIndexes are the indexes of a table that no constraint (primary key, unique) owns.
func secondaryIndexes(ctx context.Context, tx pgx.Tx, schema, table string) ([]index, error) {
	rows, err := tx.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = $1 AND i.tablename = $2 AND NOT EXISTS (
			SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)
		ORDER BY i.indexname`, schema, table)
	if err != nil {
		return nil, err
	}
	var out []index
	var ix index
	_, err = pgx.ForEachRow(rows, []any{&ix.name, &ix.def}, func() error { out = append(out, ix); return nil })
	return out, err
}

// copySource feeds COPY from the batches on rows.
type copySource struct {
	ctx   context.Context
	rows  <-chan [][]any
	cols  []Column
	local []any
	batch [][]any
	cur   []any
	vals  []any
	err   error
}

func (s *copySource) Next() bool {
	for len(s.batch) == 0 {
		select {
		case b, ok := <-s.rows:
			if !ok {
				return false
			}
			s.batch = b
		case <-s.ctx.Done():
			s.err = s.ctx.Err()
			return false
		}
	}
	s.cur, s.batch = s.batch[0], s.batch[1:]
	return true
}

func (s *copySource) Values() ([]any, error) {
	s.vals = s.vals[:0]
	for i, c := range s.cols {
		s.vals = append(s.vals, PGValue(c.Kind, s.cur[i]))
	}
	return append(s.vals, s.local...), nil
}

func (s *copySource) Err() error { return s.err }
