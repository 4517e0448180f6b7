// Package store defines what the token service needs from storage. store/sqlstore implements it once in
// SQL that both backends run; store/sqlite and store/postgres open it on their database, and storetest
// checks that both behave the same.
package store

import (
	"context"
	"time"

	"github.com/sergas/core/internal/auditoutbox"
)

// Status tells whether a connection can still produce access tokens (values match the protobuf enum).
type Status int

// Connection statuses.
const (
	StatusActive               Status = 1
	StatusNeedsReauthorization Status = 2
)

// Outcome is how a refresh attempt ended (values match the protobuf enum).
type Outcome int

// Refresh outcomes.
const (
	OutcomeNone    Outcome = 0
	OutcomeSuccess Outcome = 1
	OutcomeFailure Outcome = 2
	OutcomeRevoked Outcome = 3
)

// Connection is one stored credential. Token columns are sealed by the service's keyring before they
// reach the store; the store never sees plaintext. Times are UTC with microsecond precision.
type Connection struct {
	Provider     string
	ConnectionID string
	KeyID        string // keyring key that sealed AccessToken, RefreshToken and ClientSecret
	AccessToken  []byte
	RefreshToken []byte // nil when the provider issued none
	ClientID     string
	ClientSecret []byte // nil when the connection uses the provider's client
	TokenType    string
	ExpireTime   time.Time
	Scopes       []string
	APIDomain    string
	Status       Status
	CreateTime   time.Time
	UpdateTime   time.Time
	Version      int64

	LeaseOwner         string
	LeaseExpireTime    time.Time
	LastRefreshTime    time.Time
	LastRefreshOutcome Outcome
	LastRefreshError   string
	RefreshFailures    int
	NextRefreshTime    time.Time
}

// Key names a connection.
type Key struct{ Provider, ConnectionID string }

// RefreshEvent is one refresh attempt that reached the provider.
type RefreshEvent struct {
	ID                 int64
	Provider           string
	ConnectionID       string
	Time               time.Time
	Outcome            Outcome
	PreviousExpireTime time.Time
	NewExpireTime      time.Time // zero on failure
	ErrorClass         string
	Rotated            bool
	Replica            string
}

// OutboxEntry is an audit event waiting for delivery (the shared outbox's entry).
type OutboxEntry = auditoutbox.Entry

// OutboxClaimParams asks for a batch of audit events to send.
type OutboxClaimParams = auditoutbox.ClaimParams

// ConnectionListParams selects a page of connections ordered by (provider, connection_id).
type ConnectionListParams struct {
	Provider                         string // only this provider when set
	AfterProvider, AfterConnectionID string // the last connection of the previous page
	Limit                            int
}

// LeaseParams asks for the refresh lease of one connection.
type LeaseParams struct {
	Key
	Owner string
	Now   time.Time
	Until time.Time // lease expiry
	// DueBefore: take the lease only if the access token expires before this time (zero: always, for a
	// forced refresh). A connection in backoff (next_refresh_time > Now) is never leased.
	DueBefore time.Time
}

// RefreshResult is what the lease holder learned; RefreshFinish stores it and releases the lease.
type RefreshResult struct {
	Key
	Owner string
	Now   time.Time
	// Success fields: new sealed values (RefreshToken and ClientSecret nil keep the stored ones; the
	// service passes them re-sealed under KeyID so the whole row is sealed with one key).
	Success      bool
	KeyID        string
	AccessToken  []byte
	RefreshToken []byte
	ClientSecret []byte
	TokenType    string
	ExpireTime   time.Time
	APIDomain    string   // empty keeps the stored one
	Scopes       []string // nil keeps the stored ones
	// Failure fields.
	ErrorClass      string
	Status          Status // StatusNeedsReauthorization after a permanent failure
	NextRefreshTime time.Time
	// Event is the history row (nil when the provider was not called); Outbox the audit events to queue.
	Event  *RefreshEvent
	Outbox []OutboxEntry
}

// Store persists connections, their refresh history and the audit outbox.
type Store interface {
	// ConnectionPut inserts or replaces c (keeping the stored create_time, resetting refresh state and
	// bumping the version) and queues outbox, in one transaction. It returns the stored connection.
	ConnectionPut(ctx context.Context, c *Connection, outbox []OutboxEntry) (*Connection, error)
	// ConnectionGet returns errs.ErrNotFound when there is no such connection.
	ConnectionGet(ctx context.Context, k Key) (*Connection, error)
	// AccessTokenGet is the hot path's lean read: only Provider, ConnectionID, KeyID, AccessToken,
	// TokenType, ExpireTime, APIDomain, Status and Version are set, and RefreshToken is a non-nil empty
	// slice when one is stored. errs.ErrNotFound when there is no such connection.
	AccessTokenGet(ctx context.Context, k Key) (*Connection, error)
	// ConnectionList returns at most p.Limit connections after the cursor.
	ConnectionList(ctx context.Context, p ConnectionListParams) ([]*Connection, error)
	// ConnectionDelete deletes a connection, records event (when not nil) and queues outbox, in one
	// transaction; errs.ErrNotFound when there is no such connection.
	ConnectionDelete(ctx context.Context, k Key, event *RefreshEvent, outbox []OutboxEntry) error
	// LeaseAcquire takes the refresh lease when it is free (or expired) and the connection is due. It
	// returns the connection as stored after the attempt, and whether the caller now holds the lease.
	LeaseAcquire(ctx context.Context, p LeaseParams) (c *Connection, acquired bool, err error)
	// RefreshFinish stores r and releases the lease, in one transaction. errs.ErrConflict when r.Owner
	// no longer holds the lease.
	RefreshFinish(ctx context.Context, r RefreshResult) (*Connection, error)
	// RefreshEventList returns a connection's events with id < before (0: from the newest), newest first.
	RefreshEventList(ctx context.Context, k Key, before int64, limit int) ([]*RefreshEvent, error)
	// RefreshEventCount counts events since a time, and returns the oldest of them.
	RefreshEventCount(ctx context.Context, k Key, since time.Time) (n int, oldest time.Time, err error)
	// ConnectionsDue lists active connections with a refresh token whose access token expires before
	// before, that are not in backoff at now and not leased.
	ConnectionsDue(ctx context.Context, before, now time.Time, limit int) ([]Key, error)
	// The audit outbox the sender drains (claim, release, park, delete): see auditoutbox.Store.
	auditoutbox.Store
	// OutboxList returns the oldest entries, parked or not, for inspection.
	OutboxList(ctx context.Context, limit int) ([]OutboxEntry, error)
	// KeyIDs counts connections by the key that sealed them.
	KeyIDs(ctx context.Context) (map[string]int, error)
	// ConnectionSealedWith returns one connection sealed with keyID (errs.ErrNotFound when none is).
	ConnectionSealedWith(ctx context.Context, keyID string) (*Connection, error)
	// ConnectionsNotSealedWith lists connections sealed with any key but keyID.
	ConnectionsNotSealedWith(ctx context.Context, keyID string, limit int) ([]*Connection, error)
	// ConnectionReseal replaces the sealed columns of c if its version is still c.Version; it reports
	// whether it did (false: a concurrent write won, read again).
	ConnectionReseal(ctx context.Context, c *Connection) (bool, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
