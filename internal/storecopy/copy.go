package storecopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Reader reads tables as canonical rows. A reader over a live database reads one snapshot: every table
// as of the same moment.
type Reader interface {
	// Columns lists the table's columns in their stored order. Kind is "" where the database cannot
	// tell (SQLite: a time and an integer are both INTEGER); the other side of a copy says.
	Columns(ctx context.Context, table string) ([]Column, error)
	// HighWater is the largest value t.Identity's sequence has handed out (0 when none or no identity).
	HighWater(ctx context.Context, t Table) (int64, error)
	// Rows calls fn with each row's canonical values in cols' order, in key order. fn may keep the row.
	Rows(ctx context.Context, t Table, cols []Column, fn func([]any) error) error
}

// Writer loads tables into an empty database (made by the service's migrations) and reads them back.
type Writer interface {
	Reader
	// Write stores the batches of rows received until rows is closed, and makes t.Identity's sequence
	// continue after hw; cols are the source's columns (never a Local one: the writer fills those
	// itself). The table must be empty, but for rows the migrations seed when t.Seeded.
	Write(ctx context.Context, t Table, cols []Column, hw int64, rows <-chan [][]any) (int64, error)
}

// schemaless is a Writer that takes whatever columns the source has (the portable file).
type schemaless interface{ schemaless() }

// TableReport is what was copied of one table.
type TableReport struct {
	Table     string `json:"table"`
	Rows      int64  `json:"rows"`
	SHA256    string `json:"sha256"`
	HighWater int64  `json:"identity_high_water,omitempty"`
	// Columns are the columns copied, with their kinds: what Verify reads back.
	Columns []Column `json:"columns"`
}

// Options tune a copy.
type Options struct {
	// Batch is the rows per batch handed to the writer (default 1000).
	Batch int
	// OnRows is told of every batch read (for a progress line); it may be nil.
	OnRows func(table string, n int)
	// Observe, when set, sees every row read (for example to note the audit chain head a backup holds).
	// It must not keep or change the row.
	Observe func(t Table, cols []Column, row []any)
}

// Copy moves every table of spec from src to dst and returns, per table, the rows and the checksum of
// what was read. The writer's tables must be empty. Verify proves the copy afterwards.
func Copy(ctx context.Context, spec Spec, src Reader, dst Writer, o Options) ([]TableReport, error) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	out := make([]TableReport, 0, len(spec.Tables))
	for _, t := range spec.Tables {
		r, err := copyTable(ctx, t, src, dst, o)
		if err != nil {
			return out, fmt.Errorf("%s.%s: %w", spec.Service, t.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func copyTable(ctx context.Context, t Table, src Reader, dst Writer, o Options) (TableReport, error) {
	cols, err := Columns(ctx, t, src, dst)
	if err != nil {
		return TableReport{}, err
	}
	hw, err := src.HighWater(ctx, t)
	if err != nil {
		return TableReport{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan [][]any, 4)
	h := newRowHash()
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		batch := make([][]any, 0, o.Batch)
		send := func() error {
			if len(batch) == 0 {
				return nil
			}
			select {
			case batches <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			if o.OnRows != nil {
				o.OnRows(t.Name, len(batch))
			}
			batch = make([][]any, 0, o.Batch)
			return nil
		}
		err := src.Rows(ctx, t, cols, func(row []any) error {
			h.add(row)
			if o.Observe != nil {
				o.Observe(t, cols, row)
			}
			batch = append(batch, row)
			if len(batch) == o.Batch {
				return send()
			}
			return nil
		})
		if err == nil {
			err = send()
		}
		readErr <- err
	}()
	n, werr := dst.Write(ctx, t, cols, hw, batches)
	if werr != nil {
		cancel()
	}
	for range batches { // let the reader finish when the writer stopped early
	}
	rerr := <-readErr
	// A failed write cancels the read, which then fails in its driver's words (SQLite: "interrupted",
	// not context.Canceled): the write's error is the cause to report.
	switch {
	case werr != nil:
		return TableReport{}, fmt.Errorf("write: %w", werr)
	case rerr != nil:
		return TableReport{}, fmt.Errorf("read: %w", rerr)
	case n != h.n:
		return TableReport{}, fmt.Errorf("read %d rows but wrote %d", h.n, n)
	}
	return TableReport{Table: t.Name, Rows: h.n, SHA256: h.sum(), HighWater: hw, Columns: cols}, nil
}

// Columns is the list of columns copied for t: the source's, without Local ones, each of which the
// target must have, with the kind whichever side knows. A target column the source lacks (other than a
// Local one) means the two schemas differ.
func Columns(ctx context.Context, t Table, src, dst Reader) ([]Column, error) {
	sc, err := src.Columns(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	var dc []Column
	if _, ok := dst.(schemaless); ok {
		dc = sc
	} else if dc, err = dst.Columns(ctx, t.Name); err != nil {
		return nil, err
	}
	if len(sc) == 0 || len(dc) == 0 {
		return nil, errors.New("table missing on one side")
	}
	find := func(cs []Column, name string) (Column, bool) {
		i := slices.IndexFunc(cs, func(c Column) bool { return c.Name == name })
		if i < 0 {
			return Column{}, false
		}
		return cs[i], true
	}
	var out []Column
	for _, c := range sc {
		if t.isLocal(c.Name) {
			continue
		}
		d, ok := find(dc, c.Name)
		if !ok {
			return nil, fmt.Errorf("column %s is missing on the target: are both at the same schema version?", c.Name)
		}
		k := c.Kind
		switch {
		case k == "":
			k = d.Kind
		case d.Kind != "" && d.Kind != k:
			return nil, fmt.Errorf("column %s is %s on the source and %s on the target", c.Name, k, d.Kind)
		}
		if k == "" {
			return nil, fmt.Errorf("column %s: neither side says what kind it is", c.Name)
		}
		out = append(out, Column{Name: c.Name, Kind: k})
	}
	for _, d := range dc {
		if _, ok := find(sc, d.Name); !ok && !t.isLocal(d.Name) {
			return nil, fmt.Errorf("column %s is missing on the source: are both at the same schema version?", d.Name)
		}
	}
	return out, nil
}

// Checksum reads t from r (columns cols) and returns its row count and checksum, computed as Copy
// computes them on the source.
func Checksum(ctx context.Context, r Reader, t Table, cols []Column) (int64, string, error) {
	h := newRowHash()
	err := r.Rows(ctx, t, cols, func(row []any) error { h.add(row); return nil })
	return h.n, h.sum(), err
}

// Mismatch is a table whose copy differs from its source.
type Mismatch struct {
	Table                  string
	SourceRows, TargetRows int64
	SourceSum, TargetSum   string
}

func (m Mismatch) Error() string {
	if m.SourceRows != m.TargetRows {
		return fmt.Sprintf("%s: %d rows on the source, %d on the target", m.Table, m.SourceRows, m.TargetRows)
	}
	return fmt.Sprintf("%s: checksums differ (source %.12s…, target %.12s…)", m.Table, m.SourceSum, m.TargetSum)
}

// Verify reads every table back from dst and compares its count and checksum with the reports Copy
// made of the source.
func Verify(ctx context.Context, spec Spec, dst Reader, reports []TableReport) error {
	for _, rep := range reports {
		t, ok := spec.Table(rep.Table)
		if !ok {
			return fmt.Errorf("%s: not a table of %s", rep.Table, spec.Service)
		}
		n, sum, err := Checksum(ctx, dst, t, rep.Columns)
		if err != nil {
			return fmt.Errorf("%s: read back: %w", t.Name, err)
		}
		if n != rep.Rows || sum != rep.SHA256 {
			return Mismatch{Table: t.Name, SourceRows: rep.Rows, TargetRows: n, SourceSum: rep.SHA256, TargetSum: sum}
		}
	}
	return nil
}

// withLocal is the column list a writer stores, cols followed by the target's Local columns (of
// targetCols), and the values those take.
func withLocal(t Table, cols, targetCols []Column) ([]string, []any) {
	out := names(cols)
	var local []any
	for _, c := range targetCols {
		if t.isLocal(c.Name) {
			out = append(out, c.Name)
			local = append(local, t.LocalValue)
		}
	}
	return out, local
}
