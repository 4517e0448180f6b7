package db

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestReadStatementsKeptWithinTheBound: reads are kept prepared by text up to maxReadStmts; a text past
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
	for i := range maxReadStmts + 10 {
		got, err := SQLiteQueryAll(ctx, s, fmt.Sprintf("SELECT %d + $1", i), []any{1}, one)
		if err != nil || len(got) != 1 || got[0] != i+1 {
			t.Fatalf("query %d: %v %v", i, got, err)
		}
	}
	if n := len(s.reads.m); n != maxReadStmts {
		t.Fatalf("%d statements kept, want %d", n, maxReadStmts)
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
