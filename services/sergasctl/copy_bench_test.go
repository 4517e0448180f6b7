package sergasctl_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/storecopy"
	auditstore "github.com/sergas/core/services/audit/store"
)

// BenchmarkCopyAudit copies COPY_BENCH_EVENTS (default one million) audit events from SQLite to
// PostgreSQL with sergasctl copy (staging schema, COPY, every table read back and checksummed, the chain
// verified, the swap), and in the same run a bare COPY of the same rows, already in memory, into a freshly
// migrated schema: rows/s of both and their ratio. Run with -benchtime=1x -count=3 (make bench).
func BenchmarkCopyAudit(b *testing.B) {
	url := dbtest.PostgresURL(b)
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("COPY_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	e := newEnv(b, db.SQLite)
	r := run(b, e, "", "setup", "--service", "audit")
	if r.code != 0 {
		b.Fatal(r.stderr)
	}
	h := serviceDB(b, e, "audit")
	as := auditStoreOf(h)
	base := time.Now().UTC().Truncate(time.Microsecond)
	for i := 0; i < n; i += 1000 {
		ps := make([]auditstore.Pending, 0, 1000)
		for j := range min(1000, n-i) {
			at := base.Add(time.Duration(i+j) * time.Millisecond)
			ps = append(ps, auditstore.Pending{Event: &auditstore.Event{ID: uuid.NewString(), OccurTime: at, RecordTime: at,
				Actor: fmt.Sprint("agent-", j%16), Action: "crm.deal.update", Resource: fmt.Sprint("Deals/", i+j), Outcome: 1,
				Metadata: `{"deal":{"stage":"won","amount":1200}}`, Principal: "apikey:bench", SessionID: fmt.Sprint("s-", i/1000)}})
		}
		if _, err := as.Append(ctx, ps); err != nil {
			b.Fatal(err)
		}
	}
	rows := readAll(b, h.SQLite.Read)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e := e.with("AUDIT_DATABASE_SCHEMA", dbtest.NewSchema(b, url))
		bare := bareCopy(b, url, rows)
		b.StartTimer()
		start := time.Now()
		r := run(b, e, "", "copy", "--to", url, "--service", "audit")
		took := time.Since(start)
		if r.code != 0 {
			b.Fatalf("copy: %s %s", r.stdout, r.stderr)
		}
		b.StopTimer()
		dropSchemasLike(b, url, e["AUDIT_DATABASE_SCHEMA"]+"%")
		copyRate, bareRate := float64(n)/took.Seconds(), float64(n)/bare.Seconds()
		b.ReportMetric(copyRate, "copy_rows/s")
		b.ReportMetric(bareRate, "bare_COPY_rows/s")
		b.ReportMetric(copyRate/bareRate, "ratio")
		b.StartTimer()
	}
}

// readAll reads the events table as COPY takes it.
func readAll(b *testing.B, q *sql.DB) [][]any {
	b.Helper()
	c, err := q.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	src := storecopy.NewSQLite(c)
	t, _ := auditstore.CopySpec.Table("events")
	cols, err := pgColumns(b)
	if err != nil {
		b.Fatal(err)
	}
	var out [][]any
	err = src.Rows(context.Background(), t, cols, func(row []any) error {
		vals := make([]any, len(row))
		for i, v := range row {
			vals[i] = storecopy.PGValue(cols[i].Kind, v)
		}
		out = append(out, vals)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

var benchCols []storecopy.Column

// pgColumns are the events table's columns with their kinds, read from a migrated scratch schema.
func pgColumns(b *testing.B) ([]storecopy.Column, error) {
	if benchCols != nil {
		return benchCols, nil
	}
	url := dbtest.PostgresURL(b)
	schema := dbtest.NewSchema(b, url)
	c := migratedAudit(b, url, schema)
	defer c.Close(context.Background())
	cols, err := storecopy.NewPostgres(c, schema).Columns(context.Background(), "events")
	benchCols = cols
	return cols, err
}

// migratedAudit makes schema with the audit migrations and returns a connection to it.
func migratedAudit(b *testing.B, url, schema string) *pgx.Conn {
	b.Helper()
	ctx := context.Background()
	cfg := db.Config{Dialect: db.Postgres, PostgresURL: url, Schema: schema, PoolSize: 2, PoolTimeout: 30 * time.Second, PoolRecycle: time.Hour}
	h, err := db.Open(ctx, cfg, "audit", true)
	if err != nil {
		b.Fatal(err)
	}
	h.Close()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// bareCopy COPYs rows into the events table of a freshly migrated schema and returns how long the COPY
// took (its commit included).
func bareCopy(b *testing.B, url string, rows [][]any) time.Duration {
	b.Helper()
	ctx := context.Background()
	schema := dbtest.NewSchema(b, url)
	c := migratedAudit(b, url, schema)
	defer c.Close(ctx)
	cols, _ := pgColumns(b)
	names := make([]string, len(cols))
	for i, col := range cols {
		names[i] = col.Name
	}
	start := time.Now()
	tx, err := c.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{schema, "events"}, names, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	dropSchemasLike(b, url, schema)
	return took
}
