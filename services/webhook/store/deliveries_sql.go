package store

import (
	"time"

	"github.com/sergas/core/internal/sqlq"
)

// The delivery SQL both backends run as written (SQLite through sqlq.Rebind). What differs is passed
// in: PostgreSQL keeps ids as uuid and filters as jsonb, read through text casts (the uuid argument of
// the builders below, "::text" there and "" on SQLite), and times as timestamptz where SQLite keeps
// Unix microseconds (the drivers convert the arguments and scan the columns).

// SubscriptionColumns are the columns of a subscription in the order SubscriptionInsertSQL binds them and
// the drivers scan them.
func SubscriptionColumns(text string) string {
	return `id` + text + `, name, sources` + text + `, modules` + text + `, operations` + text + `, event_types` + text +
		`, max_retries, backoff_base_ms, backoff_cap_ms, lease_ms, state, create_time, update_time, ` + pushColumns
}

// pushColumns are a subscription's mode and push configuration (migration 0008), in the order
// SubscriptionInsertSQL binds them, the drivers scan them and SubscriptionPushSQL sets the last three.
const pushColumns = `mode, push_endpoint, push_allow_private, push_timeout_ms, push_secret, push_previous_secret,
		push_previous_secret_expire_time`

// SubscriptionInsertSQL stores a subscription; its arguments are SubscriptionColumns in order.
const SubscriptionInsertSQL = `INSERT INTO subscriptions (id, name, sources, modules, operations, event_types, max_retries,
		backoff_base_ms, backoff_cap_ms, lease_ms, state, create_time, update_time, ` + pushColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`

// SubscriptionGetQuery reads subscription $1.
func SubscriptionGetQuery(text string) string {
	return `SELECT ` + SubscriptionColumns(text) + ` FROM subscriptions WHERE id = $1`
}

// SubscriptionSetStateQuery sets state $2 and update time $3 of subscription $1 and returns it.
func SubscriptionSetStateQuery(text string) string {
	return `UPDATE subscriptions SET state = $2, update_time = $3 WHERE id = $1 RETURNING ` + SubscriptionColumns(text)
}

// SubscriptionListQuery pages subscriptions in id order (the primary key).
func SubscriptionListQuery(text string, p SubscriptionListParams) (string, []any) {
	var w sqlq.Where
	w.AddIf(p.AfterID != "", "id > ?", p.AfterID)
	return `SELECT ` + SubscriptionColumns(text) + ` FROM subscriptions` + w.String() + ` ORDER BY id LIMIT ` + w.Arg(p.Limit), w.Args
}

// SubscriptionDeleteSQL deletes subscription $1.
const SubscriptionDeleteSQL = `DELETE FROM subscriptions WHERE id = $1`

// DeliveryColumns are the columns of a delivery in the order the drivers scan them.
func DeliveryColumns(text string) string {
	return `id, subscription_id` + text + `, event_id` + text + `, source, status, attempt_count, available_time, lease, consumer,
		lease_start_time, last_error, event_receive_time, create_time, update_time`
}

// DeliveryGetQuery reads delivery $1.
func DeliveryGetQuery(text string) string {
	return `SELECT ` + DeliveryColumns(text) + ` FROM deliveries WHERE id = $1`
}

// AttemptsQuery reads the attempts of delivery $1 in number order (the primary key).
const AttemptsQuery = `SELECT number, start_time, duration_us, outcome, error, consumer, http_status, response_excerpt
	FROM delivery_attempts WHERE delivery_id = $1 ORDER BY number`

// DeliveriesDueQuery reads at most $3 deliveries of subscription $1 due at $2, oldest first, from the
// partial deliveries_due index: its predicate is written here literally (a planner uses a partial index
// only for a query whose WHERE implies it, which a parameter cannot). lock is PostgreSQL's locking clause.
func DeliveriesDueQuery(text, lock string) string {
	return `SELECT ` + DeliveryColumns(text) + ` FROM deliveries
	WHERE subscription_id = $1 AND status IN (1, 2, 4) AND available_time <= $2
	ORDER BY available_time, id LIMIT $3` + lock
}

// DeliveryUpdateSQL writes the mutable fields of delivery $1: $2 status, $3 attempt_count,
// $4 available_time, $5 lease, $6 consumer, $7 lease_start_time, $8 last_error, $9 update_time.
const DeliveryUpdateSQL = `UPDATE deliveries SET status = $2, attempt_count = $3, available_time = $4, lease = $5, consumer = $6,
		lease_start_time = $7, last_error = $8, update_time = $9
	WHERE id = $1`

// AttemptInsertSQL records attempt $2 of delivery $1: $3 start_time, $4 duration_us, $5 outcome, $6 error,
// $7 consumer, $8 http_status, $9 response_excerpt.
const AttemptInsertSQL = `INSERT INTO delivery_attempts (delivery_id, number, start_time, duration_us, outcome, error, consumer,
		http_status, response_excerpt)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// InFlightQuery counts the deliveries of subscription $1 leased to consumer $2 whose lease ends after
// $3, from the deliveries_in_flight index alone (its predicate written literally).
const InFlightQuery = `SELECT count(*) FROM deliveries WHERE subscription_id = $1 AND consumer = $2 AND status = 2 AND available_time > $3`

// AttemptsDeleteSQL deletes the attempts of the deliveries of subscription $1, before they are deleted:
// right on SQLite, where no settle interleaves; PostgreSQL deletes the attempts after the deliveries,
// by id (see its DeliveriesDelete).
const AttemptsDeleteSQL = `DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE subscription_id = $1)`

// DeliveriesDeleteQuery deletes the deliveries of subscription $1 and returns the event ids of those not
// delivered.
func DeliveriesDeleteQuery(text string) string {
	return `DELETE FROM deliveries WHERE subscription_id = $1 RETURNING event_id` + text + `, status`
}

// DeliveryListQuery returns the SQL and arguments of one page of deliveries for p. Each filter has an
// index ending in id: (subscription_id, id), (event_id, id), (status, id); two filters read one of them
// and skip rows.
func DeliveryListQuery(text string, p DeliveryListParams) (string, []any) {
	var w sqlq.Where
	w.AddIf(p.SubscriptionID != "", "subscription_id = ?", p.SubscriptionID)
	w.AddIf(p.EventID != "", "event_id = ?", p.EventID)
	w.AddIf(p.Status != 0, "status = ?", int16(p.Status)) // a smallint on PostgreSQL
	w.AddIf(p.AfterID != 0, "id > ?", p.AfterID)
	return `SELECT ` + DeliveryColumns(text) + ` FROM deliveries` + w.String() + ` ORDER BY id LIMIT ` + w.Arg(p.Limit), w.Args
}

// RedriveQuery makes the dead letters of p pending at p.Now with no attempts spent, returning their event
// ids. timeArg converts a time to the backend's argument; contains(col, arg) is the backend's "text col
// holds arg" (SQLite instr, PostgreSQL strpos: neither LIKE, whose case rules differ between them).
func RedriveQuery(text string, p RedriveParams, timeArg func(time.Time) any, contains func(col, arg string) string) (string, []any) {
	var w sqlq.Where
	now := w.Arg(timeArg(p.Now))
	w.Add("subscription_id = ?", p.SubscriptionID)
	w.Add("status = 5")
	w.AddIf(p.Source != "", "source = ?", p.Source)
	w.AddIf(!p.From.IsZero(), "event_receive_time >= ?", timeArg(p.From))
	w.AddIf(!p.To.IsZero(), "event_receive_time < ?", timeArg(p.To))
	if p.ErrorContains != "" {
		w.Add(contains("last_error", w.Arg(p.ErrorContains)))
	}
	return `UPDATE deliveries SET status = 1, attempt_count = 0, available_time = ` + now + `, update_time = ` + now +
		w.String() + ` RETURNING event_id` + text, w.Args
}

// EventStatusExpr is an event's status from its deliveries: pending (1) while any is pending, leased or
// failed; else dead letter (5) when any is; else delivered (3), also when it has none (an event no
// subscription wants). One aggregate over the event's deliveries (the deliveries_event_id index), ranking
// outstanding above dead above delivered.
const EventStatusExpr = `(SELECT CASE max(CASE WHEN d.status IN (1, 2, 4) THEN 2 WHEN d.status = 5 THEN 1 ELSE 0 END)
		WHEN 2 THEN 1 WHEN 1 THEN 5 ELSE 3 END
	FROM deliveries AS d WHERE d.event_id = events.id)`

// EventsSettleQuery sets, with update time $2, the status of the events that idsCond selects from the
// argument $1 (the backend's "id is in the list $1") where it changes.
func EventsSettleQuery(idsCond string) string {
	return `UPDATE events SET status = ` + EventStatusExpr + `, update_time = $2 WHERE ` + idsCond + ` AND status <> ` + EventStatusExpr
}
