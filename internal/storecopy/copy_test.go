package storecopy_test

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/ncruces/go-sqlite3/driver"

	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/storecopy"
)

// A table with every kind of column, the way both dialects' migrations declare it.
const sqliteDDL = `
CREATE TABLE things (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, b BLOB, at INTEGER,
	flag INTEGER NOT NULL, doc TEXT NOT NULL, u TEXT, n INTEGER);
CREATE INDEX things_name ON things (name);
CREATE TABLE head (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
INSERT INTO head VALUES (1, 0);
CREATE TABLE pairs (a TEXT NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;`

const pgDDL = `
CREATE TABLE things (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, b bytea,
	at timestamptz, flag boolean NOT NULL, doc jsonb NOT NULL, u uuid, n smallint,
	txid bigint NOT NULL DEFAULT 99);
CREATE INDEX things_name ON things (name);
CREATE TABLE head (id smallint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO head VALUES (1, 0);
CREATE TABLE pairs (a text NOT NULL, b integer NOT NULL, PRIMARY KEY (a, b));`

var spec = storecopy.Spec{Service: "test", Tables: []storecopy.Table{
	{Name: "things", Key: []string{"id"}, Identity: "id", Local: []string{"txid"}, LocalValue: 0},
	{Name: "head", Key: []string{"id"}, Seeded: true},
	{Name: "pairs", Key: []string{"a", "b"}},
}}

func sqliteConn(t *testing.T, path string) *sql.Conn {
	t.Helper()
	d, err := sql.Open("sqlite3", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := d.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.ExecContext(context.Background(), sqliteDDL); err != nil {
		t.Fatal(err)
	}
	return c
}

func pgConn(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	url := dbtest.PostgresURL(t)
	schema := dbtest.NewSchema(t, url)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+schema+"; SET search_path TO "+schema+";"+pgDDL); err != nil {
		t.Fatal(err)
	}
	return c, schema
}

// TestRoundTripKeepsEveryValue copies SQLite → PostgreSQL → portable file → SQLite and checks that every
// hop has the same counts and checksums, the sequences continue after the source's high-water mark, the
// seeded row is replaced, and the local column gets its value.
func TestRoundTripKeepsEveryValue(t *testing.T) {
	ctx := context.Background()
	src := sqliteConn(t, filepath.Join(t.TempDir(), "src.db"))
	_, err := src.ExecContext(ctx, `
		INSERT INTO things (name, b, at, flag, doc, u, n) VALUES
			('a', x'00ff', 1700000000123456, 1, '{"z": 1, "a": [1, 2.50, "x"]}', '0190F1E2-3A4B-7C5D-8E9F-A0B1C2D3E4F5', 7),
			('b', x'', NULL, 0, '[]', NULL, NULL),
			('ünï', NULL, -5, 1, '{"k":"v\u00e9"}', '0190f1e2-3a4b-7c5d-8e9f-a0b1c2d3e4f6', -3),
			('gone', NULL, 0, 0, '{}', NULL, NULL);
		DELETE FROM things WHERE name = 'gone';
		UPDATE head SET v = 42;
		INSERT INTO pairs VALUES ('B', 1), ('a', 2), ('a', 1), ('_', 9);`)
	if err != nil {
		t.Fatal(err)
	}
	pgc, schema := pgConn(t)
	pg := storecopy.NewPostgres(pgc, schema)
	s := storecopy.NewSQLite(src)
	if err := s.BeginSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	reports, err := storecopy.Copy(ctx, spec, s, pg, storecopy.Options{Batch: 2})
	s.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := storecopy.Verify(ctx, spec, pg, reports); err != nil {
		t.Fatal(err)
	}
	if reports[0].Rows != 3 || reports[0].HighWater != 4 || reports[2].Rows != 4 {
		t.Fatalf("reports: %+v", reports)
	}
	var id, txid int64
	if err := pgc.QueryRow(ctx, "INSERT INTO "+schema+".things (name, flag, doc) VALUES ('new', true, '{}') RETURNING id, txid").Scan(&id, &txid); err != nil {
		t.Fatal(err)
	}
	if id != 5 {
		t.Fatalf("the next id on PostgreSQL is %d, not 5 (after the deleted 4)", id)
	}
	var locals int
	if err := pgc.QueryRow(ctx, "SELECT count(*) FROM "+schema+".things WHERE txid = 0").Scan(&locals); err != nil || locals != 3 {
		t.Fatalf("copied rows with txid 0: %d, %v", locals, err)
	}
	if _, err := pgc.Exec(ctx, "DELETE FROM "+schema+".things WHERE id = 5"); err != nil {
		t.Fatal(err)
	}

	// PostgreSQL → file → SQLite.
	var buf bytes.Buffer
	fw, err := storecopy.NewFileWriter(&buf, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.BeginSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	fileReports, err := storecopy.Copy(ctx, spec, pg, fw, storecopy.Options{})
	pg.End(ctx)
	if err != nil || fw.Flush() != nil {
		t.Fatal(err)
	}
	if fileReports[0].HighWater != 5 {
		t.Fatalf("high water read from PostgreSQL: %d, want 5", fileReports[0].HighWater)
	}
	fr, err := storecopy.NewFileReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	dstConn := sqliteConn(t, filepath.Join(t.TempDir(), "dst.db"))
	dst := storecopy.NewSQLite(dstConn)
	back, err := storecopy.Copy(ctx, spec, fr, dst, storecopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := storecopy.Verify(ctx, spec, dst, back); err != nil {
		t.Fatal(err)
	}
	for i := range reports {
		if reports[i].SHA256 != fileReports[i].SHA256 || reports[i].SHA256 != back[i].SHA256 {
			t.Fatalf("%s: checksums differ along the way: %s %s %s", reports[i].Table, reports[i].SHA256, fileReports[i].SHA256, back[i].SHA256)
		}
	}
	if _, err := dstConn.ExecContext(ctx, "INSERT INTO things (name, flag, doc) VALUES ('new', 1, '{}')"); err != nil {
		t.Fatal(err)
	}
	if err := dstConn.QueryRowContext(ctx, "SELECT max(id) FROM things").Scan(&id); err != nil || id != 6 {
		t.Fatalf("the next id on SQLite is %d, not 6: %v", id, err)
	}
	var doc, u string
	if err := dstConn.QueryRowContext(ctx, "SELECT doc, u FROM things WHERE id = 1").Scan(&doc, &u); err != nil {
		t.Fatal(err)
	}
	if doc != `{"a":[1,2.50,"x"],"z":1}` || u != "0190f1e2-3a4b-7c5d-8e9f-a0b1c2d3e4f5" {
		t.Fatalf("canonical values: %s %s", doc, u)
	}
}

// TestVerifyFindsAChange: a value changed on the target after the copy fails verification.
func TestVerifyFindsAChange(t *testing.T) {
	ctx := context.Background()
	src := sqliteConn(t, filepath.Join(t.TempDir(), "src.db"))
	if _, err := src.ExecContext(ctx, `INSERT INTO things (name, flag, doc) VALUES ('a', 1, '{}'), ('b', 0, '[]')`); err != nil {
		t.Fatal(err)
	}
	pgc, schema := pgConn(t)
	pg := storecopy.NewPostgres(pgc, schema)
	reports, err := storecopy.Copy(ctx, spec, storecopy.NewSQLite(src), pg, storecopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgc.Exec(ctx, "UPDATE "+schema+".things SET flag = NOT flag WHERE name = 'b'"); err != nil {
		t.Fatal(err)
	}
	err = storecopy.Verify(ctx, spec, pg, reports)
	if err == nil || !strings.Contains(err.Error(), "checksums differ") {
		t.Fatalf("verify after a change: %v", err)
	}
	// A second copy into the same tables is refused: they are not empty.
	if _, err := storecopy.Copy(ctx, spec, storecopy.NewSQLite(src), pg, storecopy.Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a full table: %v", err)
	}
}

// TestBadValueNamesTheRow: a value that does not fit its kind stops the copy and names the row.
func TestBadValueNamesTheRow(t *testing.T) {
	ctx := context.Background()
	src := sqliteConn(t, filepath.Join(t.TempDir(), "src.db"))
	if _, err := src.ExecContext(ctx, `INSERT INTO things (name, flag, doc) VALUES ('a', 1, '{}'), ('b', 0, 'not json')`); err != nil {
		t.Fatal(err)
	}
	pgc, schema := pgConn(t)
	_, err := storecopy.Copy(ctx, spec, storecopy.NewSQLite(src), storecopy.NewPostgres(pgc, schema), storecopy.Options{})
	if err == nil || !strings.Contains(err.Error(), "id=2") || !strings.Contains(err.Error(), "doc") {
		t.Fatalf("copy of a bad row: %v", err)
	}
	var n int
	if err := pgc.QueryRow(ctx, "SELECT count(*) FROM "+schema+".things").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows left after a failed table: %d %v", n, err)
	}
}
