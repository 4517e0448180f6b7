package auditoutbox

import (
	"database/sql"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/sqlq"
)

// The statements every backend runs on audit_outbox, written once in PostgreSQL's $N form: SQLite
// backends pass them through sqlq.Rebind, and bind times as Unix microseconds where PostgreSQL binds
// timestamps. Each statement names one row, so that the same text serves database/sql and pgx (whose
// array parameters SQLite lacks); a batch is a loop inside one transaction.
const (
	// Columns are what ScanEntry reads, in its order.
	Columns = `id, idempotency_key, payload, create_time, claim_owner, claim_expire_time, park_time, park_reason`

	// InsertSQL queues one entry: $1 idempotency key, $2 payload, $3 create time.
	InsertSQL = `INSERT INTO audit_outbox (idempotency_key, payload, create_time) VALUES ($1, $2, $3)`

	// ListSQL returns the oldest $1 entries, parked or not.
	ListSQL = `SELECT ` + Columns + ` FROM audit_outbox ORDER BY id LIMIT $1`

	// ReleaseSQL gives back $2's claim on entry $1.
	ReleaseSQL = `UPDATE audit_outbox SET claim_owner = NULL, claim_expire_time = NULL WHERE id = $1 AND claim_owner = $2`

	// ParkSQL parks entry $1 at $2 with reason $3.
	ParkSQL = `UPDATE audit_outbox SET park_time = $2, park_reason = $3, claim_owner = NULL, claim_expire_time = NULL WHERE id = $1`

	// DeleteSQL removes entry $1.
	DeleteSQL = `DELETE FROM audit_outbox WHERE id = $1`
)

// ClaimSQL claims for $1 until $2 the oldest $4 entries neither parked nor under a claim live at $3,
// and returns them (in no order: RETURNING promises none). skipLocked ends the row selection: " FOR
// UPDATE SKIP LOCKED" on PostgreSQL, where replicas claim concurrently (the inner SELECT locks the rows
// it picks and skips those another replica is claiming; a row claimed and committed meanwhile is
// re-checked under READ COMMITTED and dropped, its claim now live); "" on SQLite, whose single writer
// already serialises claims.
func ClaimSQL(skipLocked string) string {
	return `UPDATE audit_outbox SET claim_owner = $1, claim_expire_time = $2
		WHERE id IN (SELECT id FROM audit_outbox
			WHERE park_time IS NULL AND (claim_expire_time IS NULL OR claim_expire_time <= $3)
			ORDER BY id LIMIT $4` + skipLocked + `)
		RETURNING ` + Columns
}

// ScanEntry reads a row of Columns. A time may be stored either way: Unix microseconds (SQLite) or a
// timestamp (PostgreSQL); NULL reads as the zero time.
func ScanEntry(row db.Scanner) (Entry, error) {
	var e Entry
	var owner sql.NullString
	err := row.Scan(&e.ID, &e.IdempotencyKey, &e.Payload, sqlq.Time{T: &e.CreateTime}, &owner, sqlq.Time{T: &e.ClaimExpireTime},
		sqlq.Time{T: &e.ParkTime}, &e.ParkReason)
	e.ClaimOwner = owner.String
	return e, err
}
