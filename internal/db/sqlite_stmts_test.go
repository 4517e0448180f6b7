package db

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// TestReadStatementsKeptWithinTheBound: reads are kept prepared by text up to maxCachedStmts; a text past
// the bound still runs (prepared for its one run), a repeated text reuses its statement, and Close
// closes them all before the connections.
func TestReadStatementsKeptWithinTheBound(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, Config{Dialect: SQLite, SQLitePath: filepath.Join(t.TempDir(), "x.db"), SQLiteReadConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	one := func(r Scanner) (int, error) {
		var n int
		return n, r.Scan(&n)
	}
	for i := range maxCachedStmts + 10 {
		got, err := SQLiteQueryAll(ctx, s, fmt.Sprintf("SELECT %d + $1", i), []any{1}, one)
		if err != nil || len(got) != 1 || got[0] != i+1 {
			t.Fatalf("query %d: %v %v", i, got, err)
		}
	}
	if n := len(s.reads.m); n != maxCachedStmts {
		t.Fatalf("%d statements kept, want %d", n, maxCachedStmts)
	}
	first := s.reads.m["SELECT 0 + ?1"]
	if _, err := SQLiteQueryAll(ctx, s, "SELECT 0 + $1", []any{1}, one); err != nil || s.reads.m["SELECT 0 + ?1"] != first || first == nil {
		t.Fatalf("repeated text not served by its statement: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if s.reads.m != nil {
		t.Fatal("statements left after Close")
	}
}

// TestWriteStatementsKeptWithinTheBound: statements prepared by WriteStmts before a write transaction
// run inside it through Prepared.Stmt, the same text gets the same statement, a text past the bound is
// prepared in the transaction alone, and Close closes them before the writer.
func TestWriteStatementsKeptWithinTheBound(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, Config{Dialect: SQLite, SQLitePath: filepath.Join(t.TempDir(), "x.db"), SQLiteReadConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write.ExecContext(ctx, "CREATE TABLE t (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	insert := func(q string) {
		t.Helper()
		p, err := s.WriteStmts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WriteTx(ctx, func(tx *sql.Tx) error {
			st, err := p.Stmt(ctx, tx, q)
			if err != nil {
				return err
			}
			defer st.Close()
			_, err = st.ExecContext(ctx, 1)
			return err
		}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := range maxCachedStmts + 10 {
		insert(fmt.Sprintf("INSERT INTO t (n) VALUES (? + %d)", i))
	}
	first := s.writes.m["INSERT INTO t (n) VALUES (? + 0)"]
	insert("INSERT INTO t (n) VALUES (? + 0)")
	if n := len(s.writes.m); n != maxCachedStmts || first == nil || s.writes.m["INSERT INTO t (n) VALUES (? + 0)"] != first {
		t.Fatalf("%d statements kept (want %d), or a repeated text got a new one", n, maxCachedStmts)
	}
	var rows int
	if err := s.Read.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&rows); err != nil || rows != maxCachedStmts+11 {
		t.Fatalf("%d rows (%v), want %d: a statement did not run", rows, err, maxCachedStmts+11)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if s.writes.m != nil {
		t.Fatal("statements left after Close")
	}
}
