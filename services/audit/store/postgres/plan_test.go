package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// querier is a pool or one of its connections (a test that changes session settings holds one).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// explainPlan is PostgreSQL's plan of query with args, one trimmed line per plan node, for the plan
// tests to look for index scans and sorts in.
func explainPlan(t *testing.T, ctx context.Context, q querier, query string, args ...any) string {
	t.Helper()
	rows, err := q.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, strings.TrimSpace(line))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
