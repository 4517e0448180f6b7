// Package sqlstore implements the token store once, in SQL that SQLite and PostgreSQL both run (numbered
// placeholders, RETURNING, ON CONFLICT). The one difference, how a time is stored (Unix microseconds in
// SQLite, timestamptz in PostgreSQL), is the Dialect's; reading accepts either form.
//
// Why one implementation here when the other services keep one per backend: the token store has the
// most statements (leases, history, outbox, re-sealing) and they are identical on both backends; a single
// copy keeps the lease logic from drifting between them, and the conformance suite still runs on both.
package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sergas/core/internal/auditoutbox"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/token/store"
)

// Dialect holds what differs between backends.
type Dialect struct {
	// Time encodes a time parameter; zero times are passed as NULL.
	Time func(time.Time) any
	// Translate turns driver errors into domain errors.
	Translate func(error) error
	// Rebind rewrites the $N placeholders of a statement, when the backend needs another form.
	Rebind func(string) string
	// SkipLocked ends the row selection of a claim: " FOR UPDATE SKIP LOCKED" on PostgreSQL, where
	// replicas claim concurrently; empty on SQLite, whose single writer already serialises claims.
	SkipLocked string
	// TxOptions are the options of every write transaction. PostgreSQL's are explicit READ COMMITTED:
	// the lease and the outbox claim are conditional UPDATEs that rely on re-checking a row another
	// transaction just changed, which a stricter server default would turn into serialisation failures.
	TxOptions *sql.TxOptions
}

// Store is the token store over database/sql handles: write for transactions, read for queries (the
// same pool on PostgreSQL; the single writer and the reader pool on SQLite).
type Store struct {
	write, read *sql.DB
	d           Dialect
	close       func() error
	rebound     sync.Map // statement → rebound statement
	// accessTokenStmt is AccessTokenGet's prepared statement, prepared on first use.
	accessTokenStmt atomic.Pointer[sql.Stmt]
}

var _ store.Store = (*Store)(nil)

// New returns a store; close releases the underlying database.
func New(write, read *sql.DB, d Dialect, close func() error) *Store {
	return &Store{write: write, read: read, d: d, close: close}
}

const columns = `provider, connection_id, key_id, access_token, refresh_token, client_id, client_secret, token_type,
	expire_time, scopes, api_domain, status, create_time, update_time, version, lease_owner, lease_expire_time,
	last_refresh_time, last_refresh_outcome, last_refresh_error, refresh_failures, next_refresh_time`

// q returns the statement in the backend's placeholder form, rewriting each distinct statement once.
func (s *Store) q(stmt string) string {
	if s.d.Rebind == nil {
		return stmt
	}
	if r, ok := s.rebound.Load(stmt); ok {
		return r.(string)
	}
	r := s.d.Rebind(stmt)
	s.rebound.Store(stmt, r)
	return r
}

func (s *Store) t(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.d.Time(t)
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, s.d.TxOptions)
	if err != nil {
		return s.d.Translate(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return s.d.Translate(err)
	}
	return s.d.Translate(tx.Commit())
}

// ConnectionPut implements store.Store.
func (s *Store) ConnectionPut(ctx context.Context, c *store.Connection, outbox []store.OutboxEntry) (*store.Connection, error) {
	scopes, _ := json.Marshal(nonNil(c.Scopes))
	var out *store.Connection
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanConnection(tx.QueryRowContext(ctx, s.q(`INSERT INTO connections (provider, connection_id, key_id, access_token,
				refresh_token, client_id, client_secret, token_type, expire_time, scopes, api_domain, status, create_time, update_time)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
			ON CONFLICT (provider, connection_id) DO UPDATE SET
				key_id = excluded.key_id, access_token = excluded.access_token, refresh_token = excluded.refresh_token,
				client_id = excluded.client_id, client_secret = excluded.client_secret, token_type = excluded.token_type,
				expire_time = excluded.expire_time, scopes = excluded.scopes, api_domain = excluded.api_domain,
				status = excluded.status, update_time = excluded.update_time, version = connections.version + 1,
				lease_owner = NULL, lease_expire_time = NULL, refresh_failures = 0, next_refresh_time = $14,
				last_refresh_error = ''
			RETURNING `+columns),
			c.Provider, c.ConnectionID, c.KeyID, c.AccessToken, c.RefreshToken, c.ClientID, c.ClientSecret, c.TokenType,
			s.t(c.ExpireTime), string(scopes), c.APIDomain, int(c.Status), s.t(c.UpdateTime), s.d.Time(time.Unix(0, 0))))
		if err != nil {
			return err
		}
		return s.queue(ctx, tx, outbox)
	})
	return out, err
}

func (s *Store) queue(ctx context.Context, tx *sql.Tx, outbox []store.OutboxEntry) error {
	for _, o := range outbox {
		if _, err := tx.ExecContext(ctx, s.q(auditoutbox.InsertSQL),
			o.IdempotencyKey, o.Payload, s.t(o.CreateTime)); err != nil {
			return err
		}
	}
	return nil
}

// ConnectionGet implements store.Store.
func (s *Store) ConnectionGet(ctx context.Context, k store.Key) (*store.Connection, error) {
	c, err := scanConnection(s.read.QueryRowContext(ctx, s.q(`SELECT `+columns+` FROM connections WHERE provider = $1 AND connection_id = $2`),
		k.Provider, k.ConnectionID))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("connection %s/%s not found", k.Provider, k.ConnectionID)
	}
	return c, s.d.Translate(err)
}

// AccessTokenGet implements store.Store. Its statement is prepared once (database/sql then keeps it
// prepared on each pooled connection): on SQLite, parsing it anew on every call cost more CPU than the
// read itself.
func (s *Store) AccessTokenGet(ctx context.Context, k store.Key) (*store.Connection, error) {
	stmt := s.accessTokenStmt.Load()
	if stmt == nil {
		prepared, err := s.read.PrepareContext(ctx, s.q(`SELECT key_id, access_token, token_type, expire_time, api_domain, status,
				version, CASE WHEN refresh_token IS NULL THEN 0 ELSE 1 END
			FROM connections WHERE provider = $1 AND connection_id = $2`))
		if err != nil {
			return nil, s.d.Translate(err)
		}
		if stmt = prepared; !s.accessTokenStmt.CompareAndSwap(nil, prepared) {
			prepared.Close() // another call prepared it first
			stmt = s.accessTokenStmt.Load()
		}
	}
	// The read runs detached from the caller's cancellation: with a cancellable context database/sql
	// starts a goroutine per query to watch it, which cost more CPU than this primary-key read, and
	// there is nothing to interrupt in a read of one row. A call already cancelled does not read.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := store.Connection{Provider: k.Provider, ConnectionID: k.ConnectionID}
	var status, hasRefresh int
	err := stmt.QueryRowContext(context.WithoutCancel(ctx), k.Provider, k.ConnectionID).
		Scan(&c.KeyID, &c.AccessToken, &c.TokenType, tv(&c.ExpireTime), &c.APIDomain, &status, &c.Version, &hasRefresh)
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("connection %s/%s not found", k.Provider, k.ConnectionID)
	}
	if err != nil {
		return nil, s.d.Translate(err)
	}
	c.Status = store.Status(status)
	if hasRefresh == 1 {
		c.RefreshToken = []byte{}
	}
	return &c, nil
}

// ConnectionList implements store.Store.
func (s *Store) ConnectionList(ctx context.Context, p store.ConnectionListParams) ([]*store.Connection, error) {
	var w sqlq.Where
	w.AddIf(p.Provider != "", "provider = ?", p.Provider)
	w.AddIf(p.AfterProvider != "" || p.AfterConnectionID != "", "(provider, connection_id) > (?, ?)", p.AfterProvider, p.AfterConnectionID)
	q := `SELECT ` + columns + ` FROM connections` + w.String() + " ORDER BY provider, connection_id LIMIT " + w.Arg(p.Limit)
	return queryAll(ctx, s, q, w.Args, scanConnection)
}

// ConnectionDelete implements store.Store.
func (s *Store) ConnectionDelete(ctx context.Context, k store.Key, event *store.RefreshEvent, outbox []store.OutboxEntry) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM connections WHERE provider = $1 AND connection_id = $2`), k.Provider, k.ConnectionID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.NotFound("connection %s/%s not found", k.Provider, k.ConnectionID)
		}
		if err := s.insertEvent(ctx, tx, k, event); err != nil {
			return err
		}
		return s.queue(ctx, tx, outbox)
	})
}

// LeaseAcquire implements store.Store. The conditional UPDATE is atomic on both backends (SQLite's
// single writer, PostgreSQL's row lock), so exactly one caller wins a free lease.
func (s *Store) LeaseAcquire(ctx context.Context, p store.LeaseParams) (*store.Connection, bool, error) {
	due := "TRUE"
	args := []any{p.Provider, p.ConnectionID, p.Owner, s.t(p.Until), s.t(p.Now)}
	if !p.DueBefore.IsZero() {
		due = "expire_time < $6"
		args = append(args, s.t(p.DueBefore))
	}
	c, err := scanConnection(s.write.QueryRowContext(ctx, s.q(`UPDATE connections SET lease_owner = $3, lease_expire_time = $4
		WHERE provider = $1 AND connection_id = $2 AND status = 1
			AND (lease_owner IS NULL OR lease_expire_time <= $5) AND next_refresh_time <= $5 AND `+due+`
		RETURNING `+columns), args...))
	if err == nil {
		return c, true, nil
	}
	if err != sql.ErrNoRows {
		return nil, false, s.d.Translate(err)
	}
	c, err = s.ConnectionGet(ctx, p.Key)
	return c, false, err
}

// RefreshFinish implements store.Store.
func (s *Store) RefreshFinish(ctx context.Context, r store.RefreshResult) (*store.Connection, error) {
	var out *store.Connection
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var row *sql.Row
		if r.Success {
			var scopes any
			if r.Scopes != nil {
				b, _ := json.Marshal(r.Scopes)
				scopes = string(b)
			}
			row = tx.QueryRowContext(ctx, s.q(`UPDATE connections SET key_id = $4, access_token = $5,
					refresh_token = COALESCE($6, refresh_token), token_type = $7, expire_time = $8,
					api_domain = CASE WHEN $9 = '' THEN api_domain ELSE $9 END, scopes = COALESCE($10, scopes),
					client_secret = COALESCE($12, client_secret),
					update_time = $11, version = version + 1, lease_owner = NULL, lease_expire_time = NULL,
					last_refresh_time = $11, last_refresh_outcome = 1, last_refresh_error = '', refresh_failures = 0
				WHERE provider = $1 AND connection_id = $2 AND lease_owner = $3
				RETURNING `+columns),
				r.Provider, r.ConnectionID, r.Owner, r.KeyID, r.AccessToken, r.RefreshToken, r.TokenType, s.t(r.ExpireTime),
				r.APIDomain, scopes, s.t(r.Now), r.ClientSecret)
		} else {
			lastTime, outcome := any(nil), 0
			next := r.NextRefreshTime
			if next.IsZero() {
				next = time.Unix(0, 0)
			}
			if r.Event != nil {
				lastTime, outcome = s.t(r.Now), int(store.OutcomeFailure)
			}
			row = tx.QueryRowContext(ctx, s.q(`UPDATE connections SET lease_owner = NULL, lease_expire_time = NULL,
					status = $4, next_refresh_time = $5, last_refresh_error = $6,
					refresh_failures = refresh_failures + $7,
					last_refresh_time = COALESCE($8, last_refresh_time),
					last_refresh_outcome = CASE WHEN $9 = 0 THEN last_refresh_outcome ELSE $9 END
				WHERE provider = $1 AND connection_id = $2 AND lease_owner = $3
				RETURNING `+columns),
				r.Provider, r.ConnectionID, r.Owner, int(r.Status), s.t(next), r.ErrorClass,
				boolInt(r.Event != nil), lastTime, outcome)
		}
		var err error
		if out, err = scanConnection(row); err == sql.ErrNoRows {
			return errs.New(errs.KindConflict, "refresh lease lost")
		} else if err != nil {
			return err
		}
		if err := s.insertEvent(ctx, tx, r.Key, r.Event); err != nil {
			return err
		}
		return s.queue(ctx, tx, r.Outbox)
	})
	return out, err
}

func (s *Store) insertEvent(ctx context.Context, tx *sql.Tx, k store.Key, e *store.RefreshEvent) error {
	if e == nil {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO refresh_events (provider, connection_id, time, outcome,
			previous_expire_time, new_expire_time, error_class, rotated, replica) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`),
		k.Provider, k.ConnectionID, s.t(e.Time), int(e.Outcome), s.t(e.PreviousExpireTime), s.t(e.NewExpireTime),
		e.ErrorClass, boolInt(e.Rotated), e.Replica)
	return err
}

// RefreshEventList implements store.Store.
func (s *Store) RefreshEventList(ctx context.Context, k store.Key, before int64, limit int) ([]*store.RefreshEvent, error) {
	var w sqlq.Where
	w.Add("provider = ?", k.Provider)
	w.Add("connection_id = ?", k.ConnectionID)
	w.AddIf(before > 0, "id < ?", before)
	q := `SELECT id, provider, connection_id, time, outcome, previous_expire_time, new_expire_time, error_class, rotated, replica
		FROM refresh_events` + w.String() + " ORDER BY id DESC LIMIT " + w.Arg(limit)
	return queryAll(ctx, s, q, w.Args, func(row db.Scanner) (*store.RefreshEvent, error) {
		var e store.RefreshEvent
		var outcome, rotated int
		err := row.Scan(&e.ID, &e.Provider, &e.ConnectionID, tv(&e.Time), &outcome, tv(&e.PreviousExpireTime),
			tv(&e.NewExpireTime), &e.ErrorClass, &rotated, &e.Replica)
		e.Outcome, e.Rotated = store.Outcome(outcome), rotated != 0
		return &e, err
	})
}

// RefreshEventCount implements store.Store.
func (s *Store) RefreshEventCount(ctx context.Context, k store.Key, since time.Time) (int, time.Time, error) {
	var n int
	var oldest time.Time
	err := s.read.QueryRowContext(ctx, s.q(`SELECT COUNT(*), MIN(time) FROM refresh_events
		WHERE provider = $1 AND connection_id = $2 AND time >= $3`), k.Provider, k.ConnectionID, s.t(since)).Scan(&n, tv(&oldest))
	return n, oldest, s.d.Translate(err)
}

// ConnectionsDue implements store.Store.
func (s *Store) ConnectionsDue(ctx context.Context, before, now time.Time, limit int) ([]store.Key, error) {
	return queryAll(ctx, s, `SELECT provider, connection_id FROM connections
		WHERE status = 1 AND expire_time < $1 AND refresh_token IS NOT NULL AND next_refresh_time <= $2
			AND (lease_owner IS NULL OR lease_expire_time <= $2)
		ORDER BY expire_time LIMIT $3`, []any{s.t(before), s.t(now), limit}, func(row db.Scanner) (store.Key, error) {
		var k store.Key
		return k, row.Scan(&k.Provider, &k.ConnectionID)
	})
}

// OutboxList implements store.Store.
func (s *Store) OutboxList(ctx context.Context, limit int) ([]store.OutboxEntry, error) {
	return queryAll(ctx, s, auditoutbox.ListSQL, []any{limit}, auditoutbox.ScanEntry)
}

// OutboxClaim implements store.Store (see auditoutbox.ClaimSQL for how replicas share the table).
func (s *Store) OutboxClaim(ctx context.Context, p store.OutboxClaimParams) ([]store.OutboxEntry, error) {
	var out []store.OutboxEntry
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(auditoutbox.ClaimSQL(s.d.SkipLocked)), p.Owner, s.t(p.Until), s.t(p.Now), p.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			o, err := auditoutbox.ScanEntry(rows)
			if err != nil {
				return err
			}
			out = append(out, o)
		}
		return rows.Err()
	})
	// RETURNING promises no order.
	slices.SortFunc(out, func(a, b store.OutboxEntry) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// OutboxRelease implements store.Store.
func (s *Store) OutboxRelease(ctx context.Context, owner string, ids []int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, s.q(auditoutbox.ReleaseSQL), id, owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// OutboxPark implements store.Store.
func (s *Store) OutboxPark(ctx context.Context, id int64, reason string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(auditoutbox.ParkSQL), id, s.t(now), reason)
		return err
	})
}

// OutboxDelete implements store.Store.
func (s *Store) OutboxDelete(ctx context.Context, ids []int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, s.q(auditoutbox.DeleteSQL), id); err != nil {
				return err
			}
		}
		return nil
	})
}

// KeyIDs implements store.Store.
func (s *Store) KeyIDs(ctx context.Context) (map[string]int, error) {
	rows, err := queryAll(ctx, s, `SELECT key_id, COUNT(*) FROM connections GROUP BY key_id`, nil, func(row db.Scanner) ([2]any, error) {
		var id string
		var n int
		err := row.Scan(&id, &n)
		return [2]any{id, n}, err
	})
	out := map[string]int{}
	for _, r := range rows {
		out[r[0].(string)] = r[1].(int)
	}
	return out, err
}

// ConnectionSealedWith implements store.Store.
func (s *Store) ConnectionSealedWith(ctx context.Context, keyID string) (*store.Connection, error) {
	c, err := scanConnection(s.read.QueryRowContext(ctx, s.q(`SELECT `+columns+` FROM connections WHERE key_id = $1 LIMIT 1`), keyID))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("no connection sealed with key %s", keyID)
	}
	return c, s.d.Translate(err)
}

// ConnectionsNotSealedWith implements store.Store.
func (s *Store) ConnectionsNotSealedWith(ctx context.Context, keyID string, limit int) ([]*store.Connection, error) {
	return queryAll(ctx, s, `SELECT `+columns+` FROM connections WHERE key_id <> $1 ORDER BY provider, connection_id LIMIT $2`,
		[]any{keyID, limit}, scanConnection)
}

// ConnectionReseal implements store.Store.
func (s *Store) ConnectionReseal(ctx context.Context, c *store.Connection) (bool, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE connections SET key_id = $3, access_token = $4, refresh_token = $5,
				client_secret = $6, version = version + 1
			WHERE provider = $1 AND connection_id = $2 AND version = $7`),
			c.Provider, c.ConnectionID, c.KeyID, c.AccessToken, c.RefreshToken, c.ClientSecret, c.Version)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n == 1, err
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.d.Translate(s.read.PingContext(ctx)) }

// Close implements store.Store.
func (s *Store) Close() error { return s.close() }

func queryAll[T any](ctx context.Context, s *Store, q string, args []any, scan func(db.Scanner) (T, error)) ([]T, error) {
	return db.QueryAll(ctx, s.read, s.d.Translate, s.q(q), args, scan)
}

func scanConnection(row db.Scanner) (*store.Connection, error) {
	var c store.Connection
	var scopes string
	var status, outcome int
	var leaseOwner sql.NullString
	err := row.Scan(&c.Provider, &c.ConnectionID, &c.KeyID, &c.AccessToken, &c.RefreshToken, &c.ClientID, &c.ClientSecret,
		&c.TokenType, tv(&c.ExpireTime), &scopes, &c.APIDomain, &status, tv(&c.CreateTime), tv(&c.UpdateTime), &c.Version,
		&leaseOwner, tv(&c.LeaseExpireTime), tv(&c.LastRefreshTime), &outcome, &c.LastRefreshError, &c.RefreshFailures,
		tv(&c.NextRefreshTime))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &c.Scopes); err != nil {
		return nil, fmt.Errorf("scopes column: %w", err)
	}
	if len(c.RefreshToken) == 0 {
		c.RefreshToken = nil
	}
	if len(c.ClientSecret) == 0 {
		c.ClientSecret = nil
	}
	c.Status, c.LastRefreshOutcome, c.LeaseOwner = store.Status(status), store.Outcome(outcome), leaseOwner.String
	if c.NextRefreshTime.Unix() == 0 {
		c.NextRefreshTime = time.Time{}
	}
	return &c, nil
}

func tv(t *time.Time) sqlq.Time { return sqlq.Time{T: t} }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
