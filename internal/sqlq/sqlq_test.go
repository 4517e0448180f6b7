package sqlq

import (
	"reflect"
	"testing"
)

func TestWhere(t *testing.T) {
	var w Where
	if w.String() != "" {
		t.Fatal("empty where is not empty")
	}
	w.Add("a = ?", 1)
	w.AddIf(false, "skipped = ?", 9)
	w.AddIf(true, "(b, c) > (?, ?)", "x", "y")
	limit := w.Arg(10)
	if got := w.String() + " LIMIT " + limit; got != " WHERE a = $1 AND (b, c) > ($2, $3) LIMIT $4" {
		t.Fatalf("got %q", got)
	}
	if !reflect.DeepEqual(w.Args, []any{1, "x", "y", 10}) {
		t.Fatalf("args %v", w.Args)
	}
}

func TestRebind(t *testing.T) {
	cases := map[string]string{
		"SELECT $2, $1":                         "SELECT ?2, ?1",
		"SELECT 1":                              "SELECT 1",
		"WHERE a = $10 AND b = '$1' AND \"$2\"": "WHERE a = ?10 AND b = '$1' AND \"$2\"",
		"SELECT $1 -- $2\n, $3":                 "SELECT ?1 -- $2\n, ?3",
		"SELECT '$1":                            "SELECT '$1",
		"SELECT $x, $":                          "SELECT $x, $",
		"SELECT ?3":                             "SELECT ?3",
		// Quoted text, escaped quotes included, and block comments keep their dollars.
		"SELECT 'it''s $1', $2":           "SELECT 'it''s $1', ?2",
		`SELECT "a""$1", $1`:              `SELECT "a""$1", ?1`,
		"SELECT /* $1 */ $2 /* $3":        "SELECT /* $1 */ ?2 /* $3",
		"SELECT '$1' || $1 || '$2' || $2": "SELECT '$1' || ?1 || '$2' || ?2",
		"INSERT INTO t VALUES ($1, '$$')": "INSERT INTO t VALUES (?1, '$$')",
	}
	for in, want := range cases {
		if got := Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
}
