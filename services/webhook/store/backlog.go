package store

import "context"

// BacklogCounter is implemented by the stores that can count the undelivered backlog (both do); the
// service type-asserts for it, so that the Store interface stays as the conformance suite knows it.
type BacklogCounter interface {
	// EventBacklog counts the events still to be delivered (pending or failed), stopping at atMost, so
	// that the count costs no more than atMost index entries however large the backlog has grown.
	EventBacklog(ctx context.Context, atMost int64) (int64, error)
}

// BacklogQuery counts up to $3 events in status $1 or $2 from the events_status (status, seq) index
// alone; valid on both backends.
const BacklogQuery = `SELECT count(*) FROM (SELECT 1 FROM events WHERE status IN ($1, $2) LIMIT $3) AS backlog`
