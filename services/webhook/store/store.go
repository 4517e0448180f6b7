// Package store defines what the webhook service needs from storage; store/sqlite and store/postgres
// implement it and storetest checks that both behave the same.
package store

import (
	"context"
	"time"
)

// Status is where an event stands in delivery (values match the protobuf enum).
type Status int32

// Event statuses.
const (
	StatusPending    Status = 1
	StatusProcessing Status = 2
	StatusDelivered  Status = 3
	StatusFailed     Status = 4
	StatusDeadLetter Status = 5
)

// Header is one request header.
type Header struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// Event is one stored inbound webhook. Times are UTC with microsecond precision.
type Event struct {
	Seq          int64
	ID           string
	Source       string
	DedupeKey    string
	Status       Status
	ContentType  string
	Payload      []byte   // not loaded by EventList
	Headers      []Header // not loaded by EventList
	ReceiveTime  time.Time
	UpdateTime   time.Time
	AttemptCount int32
	// SenderAddress is the IP address the delivery came from ('' for events stored before it was kept).
	SenderAddress string
}

// EventListParams filters and pages events, oldest first. Every combination of filters has an index that
// serves it in seq order (the backends' tests check the query plans).
type EventListParams struct {
	Source string
	Status Status
	After  int64 // Seq of the last event of the previous page, 0 for none
	Limit  int
}

// Store persists inbound webhooks.
type Store interface {
	// EventInsert stores e durably and returns it with its Seq. When (source, dedupe key) is already
	// stored, it stores nothing and returns the earlier event with duplicate=true.
	EventInsert(ctx context.Context, e *Event) (stored *Event, duplicate bool, err error)
	// EventGet returns errs.ErrNotFound when there is no event with that id.
	EventGet(ctx context.Context, id string) (*Event, error)
	// EventList returns at most p.Limit events without payloads and headers.
	EventList(ctx context.Context, p EventListParams) ([]*Event, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
