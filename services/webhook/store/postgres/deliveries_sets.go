package postgres

import (
	"time"

	"github.com/sergas/core/services/webhook/store"
)

// A claim or a settle of several deliveries writes them (and their attempts) with one statement over
// arrays rather than one statement per row. BenchmarkClaimAck (10 deliveries claimed, then acked, per
// transaction): 250–280 → 223–241 µs per delivery. For a single delivery the arrays cost more than they
// save (985–999 µs with the plain statements, 1,120–1,140 with these), so DeliveriesUpdate and
// AttemptsInsert keep the plain statements for one.

// deliveriesUpdate writes store.DeliveryUpdateSQL's fields of every delivery in the arrays $1…$9 (one
// element per delivery, ids distinct). "d.id = ANY($1)" lets the plan read the primary key whatever the
// planner guesses of the arrays' length; that it does on a new store too is indexPlansOnly's doing
// (TestPlansMadeOnANewStoreStayOnIndexes).
const deliveriesUpdate = `UPDATE deliveries AS d SET status = u.status, attempt_count = u.attempt_count,
		available_time = u.available_time, lease = u.lease, consumer = u.consumer, lease_start_time = u.lease_start_time,
		last_error = u.last_error, update_time = u.update_time
	FROM unnest($1::bigint[], $2::smallint[], $3::integer[], $4::timestamptz[], $5::bigint[], $6::text[], $7::timestamptz[],
		$8::text[], $9::timestamptz[]) AS u(id, status, attempt_count, available_time, lease, consumer, lease_start_time,
		last_error, update_time)
	WHERE d.id = ANY($1::bigint[]) AND d.id = u.id`

// attemptsInsert records the attempts in the arrays $1…$9 (store.AttemptInsertSQL's columns).
const attemptsInsert = `INSERT INTO delivery_attempts (delivery_id, number, start_time, duration_us, outcome, error, consumer,
		http_status, response_excerpt)
	SELECT * FROM unnest($1::bigint[], $2::integer[], $3::timestamptz[], $4::bigint[], $5::text[], $6::text[], $7::text[],
		$8::integer[], $9::text[])`

// updateArgs are deliveriesUpdate's arguments for ds. A delivery named twice is written as its last
// entry, as one statement per entry in order would leave it.
func updateArgs(ds []*store.Delivery) []any {
	last := make(map[int64]int, len(ds))
	for i, d := range ds {
		last[d.ID] = i
	}
	n := len(last)
	ids, statuses, counts := make([]int64, 0, n), make([]int16, 0, n), make([]int32, 0, n)
	avail, leases, consumers := make([]*time.Time, 0, n), make([]int64, 0, n), make([]string, 0, n)
	starts, errors, updated := make([]*time.Time, 0, n), make([]string, 0, n), make([]time.Time, 0, n)
	for i, d := range ds {
		if last[d.ID] != i {
			continue
		}
		ids, statuses, counts = append(ids, d.ID), append(statuses, int16(d.Status)), append(counts, d.AttemptCount)
		avail, leases, consumers = append(avail, optionalTime(d.AvailableTime)), append(leases, d.Lease), append(consumers, d.Consumer)
		starts, errors, updated = append(starts, optionalTime(d.LeaseStartTime)), append(errors, d.LastError), append(updated, d.UpdateTime)
	}
	return []any{ids, statuses, counts, avail, leases, consumers, starts, errors, updated}
}

// attemptArgs are attemptsInsert's arguments for as.
func attemptArgs(as []store.DeliveryAttempt) []any {
	n := len(as)
	ids, numbers, starts, durations := make([]int64, n), make([]int32, n), make([]time.Time, n), make([]int64, n)
	outcomes, errors, consumers, statuses, responses := make([]string, n), make([]string, n), make([]string, n), make([]int32, n), make([]string, n)
	for i, a := range as {
		ids[i], numbers[i], starts[i], durations[i] = a.DeliveryID, a.Number, a.StartTime, a.Duration.Microseconds()
		outcomes[i], errors[i], consumers[i], statuses[i], responses[i] = a.Outcome, a.Error, a.Consumer, a.HTTPStatus, a.Response
	}
	return []any{ids, numbers, starts, durations, outcomes, errors, consumers, statuses, responses}
}
