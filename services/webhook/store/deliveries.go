package store

import (
	"context"
	"time"
)

// SubscriptionState says whether a subscription's deliveries are handed out (values match the protobuf
// enum).
type SubscriptionState int32

// Subscription states.
const (
	SubscriptionActive SubscriptionState = 1
	SubscriptionPaused SubscriptionState = 2
)

// Filter chooses events: each non-empty list must hold the event's value; empty lists match all.
// Values are text both backends store alike (valid UTF-8, no NUL).
type Filter struct {
	Sources, Modules, Operations, EventTypes []string
}

// RetryPolicy says when a delivery that failed is handed out again.
type RetryPolicy struct {
	// MaxRetries are the attempts after the first; the attempt after the last retry that fails makes the
	// delivery a dead letter.
	MaxRetries  int32
	BackoffBase time.Duration
	BackoffCap  time.Duration
}

// Subscription is a standing order for events. Durations are stored to the millisecond, times to the
// microsecond (UTC).
type Subscription struct {
	ID            string // canonical lower-case UUID
	Name          string
	Filter        Filter
	Retry         RetryPolicy
	LeaseDuration time.Duration
	State         SubscriptionState
	CreateTime    time.Time
	UpdateTime    time.Time
}

// SubscriptionListParams pages subscriptions in id order (UUIDv7: creation order).
type SubscriptionListParams struct {
	AfterID string
	Limit   int
}

// DeliveryStatus is where a delivery stands (values match the protobuf enum).
type DeliveryStatus int32

// Delivery statuses.
const (
	DeliveryPending    DeliveryStatus = 1
	DeliveryLeased     DeliveryStatus = 2
	DeliveryDelivered  DeliveryStatus = 3
	DeliveryFailed     DeliveryStatus = 4
	DeliveryDeadLetter DeliveryStatus = 5
)

// Delivery is one event owed to one subscription.
type Delivery struct {
	ID             int64
	SubscriptionID string
	EventID        string
	Source         string // the event's
	Status         DeliveryStatus
	AttemptCount   int32
	// AvailableTime is when it is handed out next (pending, failed) or when its lease ends (leased);
	// zero once delivered or dead.
	AvailableTime time.Time
	// Lease counts the times it was handed out; an ack must name the current one.
	Lease int64
	// Consumer holds it while leased, and held it last otherwise.
	Consumer string
	// LeaseStartTime is when the current (or last) lease began.
	LeaseStartTime   time.Time
	LastError        string
	EventReceiveTime time.Time
	CreateTime       time.Time
	UpdateTime       time.Time
}

// Attempt is one hand-out of a delivery and how it ended.
type Attempt struct {
	Number    int32
	StartTime time.Time
	Duration  time.Duration
	Outcome   string // AttemptAcked, AttemptNacked, AttemptLeaseExpired
	Error     string
	Consumer  string
}

// Attempt outcomes.
const (
	AttemptAcked        = "acked"
	AttemptNacked       = "nacked"
	AttemptLeaseExpired = "lease_expired"
)

// Claimed is a delivery just leased, with its event (payload and headers included).
type Claimed struct {
	Delivery *Delivery
	Event    *Event
}

// ClaimParams leases at most Limit deliveries of a subscription to Consumer, from Now for the
// subscription's lease duration: those pending or failed whose AvailableTime has come, and those leased
// whose lease has ended (an attempt "lease_expired" is recorded for the previous holder, and one out of
// attempts becomes a dead letter instead of being handed out), oldest AvailableTime first. Nothing is
// claimed for a paused subscription.
type ClaimParams struct {
	SubscriptionID string
	Consumer       string
	Now            time.Time
	Limit          int
}

// SettleParams ends the lease Lease of delivery ID: an Ack (Nack false) makes it delivered; a Nack makes
// it failed, handed out again at RetryAt (or, when RetryAt is zero, after the subscription's backoff
// for its attempt count, jittered), or a dead letter when it is out of attempts. Error is kept with the
// attempt. A lease that has ended but has not passed on can still be settled.
type SettleParams struct {
	ID      int64
	Lease   int64
	Now     time.Time
	Nack    bool
	RetryAt time.Time
	Error   string
}

// DeliveryListParams filters and pages deliveries in id order.
type DeliveryListParams struct {
	SubscriptionID string
	EventID        string
	Status         DeliveryStatus
	AfterID        int64
	Limit          int
}

// RedriveParams chooses a subscription's dead letters to make pending again at Now: of Source, of
// events received in [From, To) (zero: unbounded), whose last error contains ErrorContains.
type RedriveParams struct {
	SubscriptionID string
	Source         string
	From, To       time.Time
	ErrorContains  string
	Now            time.Time
}

// DeliveryStore keeps subscriptions and their deliveries. Every stored event gets, in the transaction
// that stores it (EventInsert, EventInsertBatch), one pending delivery per subscription whose filter
// matches it (paused ones included); an event no subscription wants is stored as delivered. An event's
// status follows its deliveries: pending while any is pending, leased or failed, then delivered, or dead
// letter when one ended so.
//
// Errors: errs.KindNotFound for an unknown id, errs.KindAlreadyExists for a taken subscription name,
// errs.KindFailedPrecondition for a lease that is not current (settled, or handed to another consumer).
type DeliveryStore interface {
	SubscriptionCreate(ctx context.Context, s *Subscription) error
	SubscriptionGet(ctx context.Context, id string) (*Subscription, error)
	SubscriptionList(ctx context.Context, p SubscriptionListParams) ([]*Subscription, error)
	// SubscriptionSetState changes the state and UpdateTime, returning the subscription as stored.
	SubscriptionSetState(ctx context.Context, id string, state SubscriptionState, now time.Time) (*Subscription, error)
	// SubscriptionDelete removes the subscription with its deliveries and their attempts, and settles
	// the events that were waiting only on it.
	SubscriptionDelete(ctx context.Context, id string) error

	DeliveryClaim(ctx context.Context, p ClaimParams) ([]Claimed, error)
	DeliverySettle(ctx context.Context, p SettleParams) (*Delivery, error)
	// DeliverySettleBatch settles many leases in one transaction; a lease that is not current is refused
	// in its own result without failing the others.
	DeliverySettleBatch(ctx context.Context, ps []SettleParams) ([]SettleResult, error)
	// DeliveryExtend moves the end of the current lease to until.
	DeliveryExtend(ctx context.Context, id, lease int64, now, until time.Time) (*Delivery, error)
	// DeliveryInFlight counts the deliveries of the subscription leased to consumer whose lease has not
	// ended at now.
	DeliveryInFlight(ctx context.Context, subscriptionID, consumer string, now time.Time) (int, error)
	DeliveryGet(ctx context.Context, id int64) (*Delivery, []Attempt, error)
	DeliveryList(ctx context.Context, p DeliveryListParams) ([]*Delivery, error)
	DeliveryRedrive(ctx context.Context, p RedriveParams) (int64, error)
}
