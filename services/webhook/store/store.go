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
	Seq int64
	// Tx is the id of the PostgreSQL transaction that stored the event (0 on SQLite, and for events
	// stored before it was kept): with Seq, the event's place in list order (see Cursor).
	Tx           int64
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
	Normalised
	// Settled is set by EventList on an event no uncommitted event can precede in list order: its
	// Cursor is safe to page from (see Cursor).
	Settled bool
}

// Normalised is what an event is about, read from its body at ingest (the raw bytes stay as received).
// Every string is text both backends store alike (valid UTF-8, no NUL); empty when not read.
type Normalised struct {
	// Module, Operation, RecordIDs, AffectedFields and ServerTime come from a Zoho CRM notification.
	Module         string
	Operation      string
	RecordIDs      []string // nil for none
	AffectedFields []string // nil for none
	ServerTime     time.Time
	// EventType is the value at the source's configured JSON pointer.
	EventType string
}

// Cursor is a place in list order: events are listed by (Tx, Seq), and a page token never points past an
// event whose transaction may still commit.
//
// Why not Seq alone: on PostgreSQL seq is taken from an identity when the row is inserted, and
// transactions commit in any order, so event 10 can become visible after a reader has paged past 11, and
// a cursor of 11 then never lists 10. The list on PostgreSQL therefore orders by the inserting
// transaction's id (Tx, pg_current_xact_id()) and then Seq, and marks as Settled the events whose Tx is
// below the oldest transaction still running when the list's snapshot was taken (pg_snapshot_xmin).
// Every transaction below that horizon has ended and no new one is ever numbered below it, so nothing can
// appear at or before a settled event's cursor: only those are handed out as cursors (see Page). SQLite's
// single writer commits in seq order: there Tx is 0 and every listed event is settled.
type Cursor struct {
	Tx  int64
	Seq int64
}

// Cursor is e's place in list order.
func (e *Event) Cursor() Cursor { return Cursor{Tx: e.Tx, Seq: e.Seq} }

// EventListParams filters and pages events, oldest first. Every combination of filters has an index that
// serves it in list order (the backends' tests check the query plans).
type EventListParams struct {
	Source    string
	Status    Status
	Module    string
	Operation string
	EventType string
	After     Cursor // the last event of the previous page; the zero Cursor for the first page
	Limit     int
}

// Inserted is what EventInsertBatch did with one event: Event is the one stored, or for a duplicate the
// one stored before.
type Inserted struct {
	Event     *Event
	Duplicate bool
}

// Store persists inbound webhooks.
type Store interface {
	// EventInsert stores e durably and returns it with its Seq. When (source, dedupe key) is already
	// stored, it stores nothing and returns the earlier event with duplicate=true.
	EventInsert(ctx context.Context, e *Event) (stored *Event, duplicate bool, err error)
	// EventInsertBatch stores es in one transaction, as EventInsert stores each, and returns one Inserted
	// per event in order. An event whose (source, dedupe key) is already stored, or comes earlier in es,
	// stores nothing and answers with the first one stored and Duplicate set. On an error nothing of the
	// batch is stored.
	EventInsertBatch(ctx context.Context, es []*Event) ([]Inserted, error)
	// EventGet returns errs.ErrNotFound when there is no event with that id.
	EventGet(ctx context.Context, id string) (*Event, error)
	// EventList returns at most p.Limit committed events after p.After in list order, without payloads
	// and headers, with Settled set (see Cursor); Page makes a page of them.
	EventList(ctx context.Context, p EventListParams) ([]*Event, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
	// ChannelStore keeps the Zoho CRM notification channels the service manages.
	ChannelStore
	// DeliveryStore keeps subscriptions and the deliveries of every stored event to them.
	DeliveryStore
}
