package store

import (
	"time"

	"github.com/sergas/core/internal/sqlq"
)

// ListQuery returns the SQL (valid on both backends) and arguments that select one page of events for p;
// columns is the backend's select list and timeArg encodes a time as the backend stores it.
//
// Every equality filter has an index that ends in sequence (migrations 0002, 0003 and 0005), so the page is a range read
// of that index in either direction, never a sort of the matches; a wide time range is read in sequence
// order from the primary key and filtered, and a narrow one is fetched by events_occur_time and only its
// few matches are sorted. The backends' EXPLAIN tests check each case.
func ListQuery(columns string, p EventListParams, timeArg func(time.Time) any) (string, []any) {
	var w sqlq.Where
	w.AddIf(p.Actor != "", "actor = ?", p.Actor)
	w.AddIf(p.Action != "", "action = ?", p.Action)
	w.AddIf(p.Resource != "", "resource = ?", p.Resource)
	w.AddIf(p.Outcome != 0, "outcome = ?", p.Outcome)
	// The context filters' indexes leave out unset values (migration 0005). A filter is never an unset
	// value, so the term after each is implied; stating it lets both planners prove that the partial
	// index holds every match, which they cannot from "= ?" with a bound value.
	w.AddIf(p.ActorType != 0, "actor_type = ? AND actor_type <> 0", p.ActorType)
	w.AddIf(p.SessionID != "", "session_id = ? AND session_id <> ''", p.SessionID)
	w.AddIf(p.RequestID != "", "request_id = ? AND request_id <> ''", p.RequestID)
	w.AddIf(p.SourceService != "", "source_service = ? AND source_service <> ''", p.SourceService)
	w.AddIf(!p.Start.IsZero(), "occur_time >= ?", timeArg(p.Start))
	w.AddIf(!p.End.IsZero(), "occur_time < ?", timeArg(p.End))
	order := " ORDER BY sequence"
	if p.Descending {
		order += " DESC"
		w.AddIf(p.After > 0, "sequence < ?", p.After)
	} else {
		w.AddIf(p.After > 0, "sequence > ?", p.After)
	}
	// The LIMIT placeholder is added before w.Args is read.
	q := `SELECT ` + columns + ` FROM events` + w.String() + order + " LIMIT " + w.Arg(p.Limit)
	return q, w.Args
}
