package store

import "github.com/sergas/core/internal/sqlq"

// Order says how a backend orders and bounds a list (see Cursor).
type Order int

// List orders.
const (
	// BySeq orders by seq alone: right where transactions commit in seq order (SQLite's single writer).
	BySeq Order = iota
	// ByCommitHorizon orders by (txid, seq) and marks the events below the oldest running transaction
	// settled (PostgreSQL).
	ByCommitHorizon
)

// commitHorizon is the oldest transaction still running when the statement's snapshot was taken: every
// transaction below it has committed or aborted, and no new one can be numbered below it. xid8 has no
// cast to bigint; through text it fits (epoch and xid, 64 bits, never wrapping).
const commitHorizon = `(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint`

// ListQuery returns the SQL and arguments that select one page of events for p; columns is the backend's
// select list. Its shape (equality on the filtered columns, a range on the order columns, ORDER BY them)
// is what the indexes ending in the order columns serve; each backend's explain_test.go keeps it that way.
func ListQuery(columns string, order Order, p EventListParams) (string, []any) {
	var w sqlq.Where
	w.AddIf(p.Source != "", "source = ?", p.Source)
	w.AddIf(p.Status != 0, "status = ?", int16(p.Status)) // a SMALLINT on PostgreSQL
	// The indexes on module, operation and event_type are partial (WHERE … <> ''): the predicate is repeated so that
	// the planner can use them for any value (the service refuses an empty filter value as "no filter").
	w.AddIf(p.Module != "", "module = ? AND module <> ''", p.Module)
	w.AddIf(p.Operation != "", "operation = ? AND operation <> ''", p.Operation)
	w.AddIf(p.EventType != "", "event_type = ? AND event_type <> ''", p.EventType)
	orderBy := " ORDER BY seq"
	if order == ByCommitHorizon {
		// Listed whether settled or not (Page decides what a cursor may point at), so that a list
		// shows what was just committed.
		columns += ", txid < " + commitHorizon + " AS settled"
		w.AddIf(p.After != Cursor{}, "(txid, seq) > (?, ?)", p.After.Tx, p.After.Seq)
		orderBy = " ORDER BY txid, seq"
	} else {
		w.AddIf(p.After.Seq > 0, "seq > ?", p.After.Seq)
	}
	// The LIMIT placeholder is added before w.Args is read.
	q := `SELECT ` + columns + ` FROM events` + w.String() + orderBy + " LIMIT " + w.Arg(p.Limit)
	return q, w.Args
}
