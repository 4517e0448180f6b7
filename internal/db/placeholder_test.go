package db_test

import (
	"context"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/sqlq"
)

// A query that names its placeholders out of order must bind $N to the N-th argument on both backends;
// SQLite on its own binds "$2" to the first argument it sees.
func TestPlaceholdersBindByNumber(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		h := dbtest.Open(t, d, "audit")
		var w sqlq.Where
		limit := w.Arg(int64(7)) // numbered first, written last: the pattern the list queries use
		w.Add("x = ?", "second")
		w.Add("y = ?", "third")
		q := "SELECT a, b, c FROM (SELECT CAST($3 AS TEXT) AS a, CAST($2 AS TEXT) AS b, CAST(" + limit + " AS BIGINT) AS c) s" +
			" WHERE a = $3 AND b = $2 LIMIT $1"
		type row struct {
			a, b string
			c    int64
		}
		scan := func(s db.Scanner) (row, error) {
			var r row
			return r, s.Scan(&r.a, &r.b, &r.c)
		}
		var got []row
		var err error
		if d == db.SQLite {
			got, err = db.SQLiteQueryAll(ctx, h.SQLite, q, w.Args, scan)
		} else {
			got, err = db.PostgresQueryAll(ctx, h.Postgres, q, w.Args, scan)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != (row{"third", "second", 7}) {
			t.Fatalf("got %+v, want one row {third second 7}", got)
		}
	})
}
