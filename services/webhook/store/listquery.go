package store

import "github.com/sergas/core/internal/sqlq"

// ListQuery returns the SQL (valid on both backends) and arguments that select one page of events for p;
// columns is the backend's select list. Its shape (equality on the filtered columns, a seq range, ORDER BY
// seq) is what the (source, seq), (status, seq) and (source, status, seq) indexes serve; each backend's
// explain_test.go keeps it that way.
func ListQuery(columns string, p EventListParams) (string, []any) {
	var w sqlq.Where
	w.AddIf(p.Source != "", "source = ?", p.Source)
	w.AddIf(p.Status != 0, "status = ?", int16(p.Status)) // a SMALLINT on PostgreSQL
	w.AddIf(p.After > 0, "seq > ?", p.After)
	// The LIMIT placeholder is added before w.Args is read.
	q := `SELECT ` + columns + ` FROM events` + w.String() + " ORDER BY seq LIMIT " + w.Arg(p.Limit)
	return q, w.Args
}
