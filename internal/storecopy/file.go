package storecopy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// FileFormat names the portable format: JSON lines, one header per table, one JSON array per row
// (int64 as a number, text as a string, bytes as standard base64, null), one trailer per table with its
// row count and checksum. The caller compresses it.
const FileFormat = "sergasctl-export/1"

type fileHeader struct {
	Format  string `json:"format"`
	Service string `json:"service"`
}

type tableHeader struct {
	Table     string   `json:"table"`
	Columns   []Column `json:"columns"`
	HighWater int64    `json:"identity_high_water"`
}

type tableTrailer struct {
	End    string `json:"end"`
	Rows   int64  `json:"rows"`
	SHA256 string `json:"sha256"`
}

// FileWriter writes the portable format. It takes the source's columns as they are (schemaless).
type FileWriter struct {
	w *bufio.Writer
}

// NewFileWriter writes the format's first line for service to w. Flush when done.
func NewFileWriter(w io.Writer, service string) (*FileWriter, error) {
	f := &FileWriter{w: bufio.NewWriterSize(w, 1<<16)}
	return f, f.line(fileHeader{Format: FileFormat, Service: service})
}

func (f *FileWriter) schemaless() {}

func (f *FileWriter) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f.w.Write(b)
	return f.w.WriteByte('\n')
}

// Flush writes out what is buffered.
func (f *FileWriter) Flush() error { return f.w.Flush() }

// Columns implements Reader; a file takes any columns.
func (f *FileWriter) Columns(context.Context, string) ([]Column, error) { return nil, nil }

// HighWater implements Reader.
func (f *FileWriter) HighWater(context.Context, Table) (int64, error) { return 0, nil }

// Rows implements Reader: a file being written cannot be read back; reopen it with NewFileReader.
func (f *FileWriter) Rows(context.Context, Table, []Column, func([]any) error) error {
	return errors.New("read the file back with NewFileReader")
}

// Write implements Writer.
func (f *FileWriter) Write(ctx context.Context, t Table, cols []Column, hw int64, rows <-chan [][]any) (int64, error) {
	if err := f.line(tableHeader{Table: t.Name, Columns: cols, HighWater: hw}); err != nil {
		return 0, err
	}
	h := newRowHash()
	enc := make([]any, len(cols))
	for batch := range rows {
		for _, row := range batch {
			for i, v := range row {
				if b, ok := v.([]byte); ok {
					enc[i] = base64.StdEncoding.EncodeToString(b)
				} else {
					enc[i] = v
				}
			}
			h.add(row)
			if err := f.line(enc); err != nil {
				return h.n, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return h.n, err
	}
	return h.n, f.line(tableTrailer{End: t.Name, Rows: h.n, SHA256: h.sum()})
}

// FileReader reads the portable format, table after table in the order they were written. Each table's
// rows are checked against its trailer as they are read.
type FileReader struct {
	r       *bufio.Reader
	Service string
	cur     *tableHeader
}

// maxFileLine bounds one line (one row): the largest row the services store is a webhook event of
// 10 MiB, base64 and escapes included well under 64 MiB.
const maxFileLine = 64 << 20

// NewFileReader reads the format's first line from r.
func NewFileReader(r io.Reader) (*FileReader, error) {
	f := &FileReader{r: bufio.NewReaderSize(r, 1<<16)}
	var h fileHeader
	if err := f.next(&h); err != nil {
		return nil, fmt.Errorf("not a %s file: %w", FileFormat, err)
	}
	if h.Format != FileFormat {
		return nil, fmt.Errorf("format %q, not %s", h.Format, FileFormat)
	}
	f.Service = h.Service
	return f, nil
}

func (f *FileReader) next(v any) error {
	var line []byte
	for {
		part, err := f.r.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > maxFileLine {
			return errors.New("line too long")
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return io.ErrUnexpectedEOF
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		break
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	return d.Decode(v)
}

// header reads the next table's header unless it is the one already read.
func (f *FileReader) header(table string) (*tableHeader, error) {
	if f.cur != nil && f.cur.Table == table {
		return f.cur, nil
	}
	var h tableHeader
	if err := f.next(&h); err != nil {
		return nil, fmt.Errorf("table %s: %w", table, err)
	}
	if h.Table != table {
		return nil, fmt.Errorf("expected table %s, found %q", table, h.Table)
	}
	f.cur = &h
	return f.cur, nil
}

// Columns implements Reader.
func (f *FileReader) Columns(_ context.Context, table string) ([]Column, error) {
	h, err := f.header(table)
	if err != nil {
		return nil, err
	}
	return h.Columns, nil
}

// HighWater implements Reader.
func (f *FileReader) HighWater(_ context.Context, t Table) (int64, error) {
	h, err := f.header(t.Name)
	if err != nil {
		return 0, err
	}
	return h.HighWater, nil
}

// Rows implements Reader. cols must be the file's columns (a file is read as written).
func (f *FileReader) Rows(ctx context.Context, t Table, cols []Column, fn func([]any) error) error {
	h, err := f.header(t.Name)
	if err != nil {
		return err
	}
	if len(cols) != len(h.Columns) {
		return fmt.Errorf("table %s: %d columns asked, the file has %d", t.Name, len(cols), len(h.Columns))
	}
	sum := newRowHash()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var raw json.RawMessage
		if err := f.next(&raw); err != nil {
			return fmt.Errorf("table %s, row %d: %w", t.Name, sum.n+1, err)
		}
		if len(raw) > 0 && raw[0] == '{' { // the trailer
			var tr tableTrailer
			if err := json.Unmarshal(raw, &tr); err != nil || tr.End != t.Name {
				return fmt.Errorf("table %s: bad trailer", t.Name)
			}
			if tr.Rows != sum.n || tr.SHA256 != sum.sum() {
				return fmt.Errorf("table %s: %d rows read, the trailer says %d, or the checksum differs: the file is damaged", t.Name, sum.n, tr.Rows)
			}
			f.cur = nil
			return nil
		}
		row, err := decodeRow(raw, h.Columns)
		if err != nil {
			return fmt.Errorf("table %s, row %d: %w", t.Name, sum.n+1, err)
		}
		sum.add(row)
		if err := fn(row); err != nil {
			return err
		}
	}
}

// decodeRow turns one JSON row into canonical values.
func decodeRow(raw []byte, cols []Column) ([]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var vals []any
	if err := d.Decode(&vals); err != nil {
		return nil, err
	}
	if len(vals) != len(cols) {
		return nil, fmt.Errorf("%d values for %d columns", len(vals), len(cols))
	}
	row := make([]any, len(cols))
	for i, c := range cols {
		switch v := vals[i].(type) {
		case nil:
		case json.Number:
			n, err := v.Int64()
			if err != nil || (c.Kind != KindInt && c.Kind != KindTime && c.Kind != KindBool) {
				return nil, fmt.Errorf("column %s: bad number %s", c.Name, v)
			}
			row[i] = n
		case string:
			if c.Kind == KindBytes {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					return nil, fmt.Errorf("column %s: bad base64", c.Name)
				}
				row[i] = b
			} else if c.Kind == KindText || c.Kind == KindJSON || c.Kind == KindUUID {
				row[i] = v
			} else {
				return nil, fmt.Errorf("column %s: a string in a %s column", c.Name, c.Kind)
			}
		default:
			return nil, fmt.Errorf("column %s: unexpected %T", c.Name, v)
		}
	}
	return row, nil
}
