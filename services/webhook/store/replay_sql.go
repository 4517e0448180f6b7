package store

// The replay and purge SQL both backends run as written (SQLite through sqlq.Rebind); see
// deliveries_sql.go for what is passed in. inList(col, arg) is the backend's "col is one of the ids of
// the list argument arg" (SQLite: a JSON array read with json_each; PostgreSQL: a uuid array); lock is
// PostgreSQL's order and locking clause, "" on SQLite, whose single writer needs neither (and an ORDER
// BY there would only make its planner sort, or read a worse index in order).
//
// Events are read in (receive_time, seq) order from the events_receive_time index (migration 0009). The
// position after (t, seq) is written "receive_time >= t AND (receive_time > t OR seq > seq)" rather than
// as a row comparison, so that both planners read it as a range of the index.

// ReplayPageQuery reads at most $4 events received before $5 (when bounded) after position ($2, $3), in
// order, each with whether subscription $1's filter matches it: matches is the fan-out's predicate over
// e (the event) and s (the subscription), passed in so that replay and fan-out match alike.
func ReplayPageQuery(text, matches string, bounded bool) string {
	to := ""
	if bounded {
		to = ` AND receive_time < $5`
	}
	return `SELECT e.id` + text + `, e.receive_time, e.seq, CASE WHEN ` + matches + ` THEN 1 ELSE 0 END
	FROM (SELECT id, receive_time, seq, source, module, operation, event_type FROM events
		WHERE receive_time >= $2 AND (receive_time > $2 OR seq > $3)` + to + `
		ORDER BY receive_time, seq LIMIT $4) AS e, subscriptions AS s
	WHERE s.id = $1
	ORDER BY e.receive_time, e.seq`
}

// EventsKeyShareQuery returns those of the events $1 that exist (lock: in (receive_time, seq) order,
// locked).
func EventsKeyShareQuery(text, inList, lock string) string {
	return `SELECT id` + text + ` FROM events WHERE ` + inList + lock
}

// DeliveriesResetQuery makes the delivered and dead deliveries of subscription $1 to the events $2
// pending at $3 with no attempts spent (lease, consumer and last error kept, as a redrive does),
// returning their event ids. On PostgreSQL the rows are locked in id order first (lock), the order in
// which every statement that locks several deliveries takes them.
func DeliveriesResetQuery(text, inList, lock string) string {
	return `UPDATE deliveries SET status = 1, attempt_count = 0, available_time = $3, update_time = $3
	WHERE id IN (SELECT id FROM deliveries WHERE subscription_id = $1 AND ` + inList + ` AND status IN (3, 5)` + lock + `)
	RETURNING event_id` + text
}

// DeliveriesMakeQuery gives subscription $1 a delivery of each of the events $2 that has none, pending
// and available at $3 and created then, its source and receive time copied from the event as fan-out
// does, returning their event ids. ON CONFLICT: a replay racing another of the same event makes one.
func DeliveriesMakeQuery(text, inList string) string {
	return `INSERT INTO deliveries (subscription_id, event_id, source, status, attempt_count, available_time, lease, consumer,
		lease_start_time, last_error, event_receive_time, create_time, update_time)
	SELECT s.id, e.id, e.source, 1, 0, $3, 0, '', NULL, '', e.receive_time, $3, $3
	FROM events AS e, subscriptions AS s
	WHERE s.id = $1 AND ` + inList + ` AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.subscription_id = s.id AND d.event_id = e.id)
	ON CONFLICT (subscription_id, event_id) DO NOTHING
	RETURNING event_id` + text
}

// EventsPurgeableQuery reads at most $4 delivered events received before $1, after position ($2, $3), in
// order, none of whose deliveries is other than delivered (the status says so already; checked again
// because a purge must never delete an undelivered one), under lock. "+status": the unary plus keeps
// SQLite's planner, which has no statistics, from reading events_status and sorting; delivered events
// are most of the table, so the receive-time range is the index to read (PostgreSQL's planner agrees).
func EventsPurgeableQuery(text, lock string) string {
	return `SELECT id` + text + `, receive_time, seq FROM events
	WHERE receive_time < $1 AND receive_time >= $2 AND (receive_time > $2 OR seq > $3) AND +status = 3
		AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = events.id AND d.status <> 3)
	ORDER BY receive_time, seq LIMIT $4` + lock
}
