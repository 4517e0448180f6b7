// Package store defines what the token service needs from storage; store/sqlite and store/postgres
// implement it and storetest checks that both behave the same.
package store

import (
	"context"
	"time"
)

// Status tells whether a connection can still produce access tokens (values match the protobuf enum).
type Status int

// Connection statuses.
const (
	StatusActive               Status = 1
	StatusNeedsReauthorization Status = 2
)

// Connection is one stored credential. Times are UTC with microsecond precision, as both backends keep.
type Connection struct {
	Provider     string
	ConnectionID string
	AccessToken  string
	RefreshToken string // empty when the provider issued none
	TokenType    string
	ExpireTime   time.Time
	Scopes       []string
	APIDomain    string
	Status       Status
	CreateTime   time.Time
	UpdateTime   time.Time
}

// ConnectionListParams selects a page of connections ordered by (provider, connection_id).
type ConnectionListParams struct {
	Provider string // only this provider when set
	// After is the (provider, connection_id) of the last connection of the previous page, if any.
	AfterProvider, AfterConnectionID string
	Limit                            int
}

// Store persists connections.
type Store interface {
	// ConnectionPut inserts or replaces c. On replace, the stored create_time is kept. It returns the
	// connection as stored.
	ConnectionPut(ctx context.Context, c *Connection) (*Connection, error)
	// ConnectionGet returns errs.ErrNotFound when there is no such connection.
	ConnectionGet(ctx context.Context, provider, connectionID string) (*Connection, error)
	// ConnectionList returns at most p.Limit connections after the cursor.
	ConnectionList(ctx context.Context, p ConnectionListParams) ([]*Connection, error)
	// ConnectionDelete returns errs.ErrNotFound when there is no such connection.
	ConnectionDelete(ctx context.Context, provider, connectionID string) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
