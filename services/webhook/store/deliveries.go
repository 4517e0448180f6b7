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

// SubscriptionMode says how deliveries reach the consumer (values match the protobuf enum).
type SubscriptionMode int32

// Subscription modes.
const (
	SubscriptionPull SubscriptionMode = 1
	SubscriptionPush SubscriptionMode = 2
)

// PushConfig is where a push subscription's deliveries are POSTed. The secrets are sealed by the
// service (WEBHOOK_ENCRYPTION_KEYS, bound to the subscription id): opaque bytes to the store.
type PushConfig struct {
	Endpoint            string
	AllowPrivateNetwork bool
	Timeout             time.Duration // stored to the millisecond
	Secret              []byte
	// PreviousSecret signs beside Secret until PreviousSecretExpireTime; nil (and a zero time) when
	// there is none.
	PreviousSecret           []byte
	PreviousSecretExpireTime time.Time
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
	// Mode is SubscriptionPull or SubscriptionPush; Push is set exactly for push subscriptions.
	Mode SubscriptionMode
	Push *PushConfig
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
	// HTTPStatus (0: no answer) and Response (at most MaxResponseExcerpt bytes of valid UTF-8) are a
	// push attempt's.
	HTTPStatus int32
	Response   string
}

// MaxResponseExcerpt bounds the part of a push endpoint's answer kept with an attempt.
const MaxResponseExcerpt = 512

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
	// HTTPStatus and Response are kept with the attempt (push); see Attempt.
	HTTPStatus int32
	Response   string
	// SubscriptionID, when set, must be the delivery's subscription, or the settle is refused
	// (errs.KindNotFound): an ack id names both, and one that pairs a subscription with another's
	// delivery must not settle it.
	SubscriptionID string
	// Pusher is set by push workers. A settle without it refuses a delivery leased to a push worker
	// (a consumer named with PushConsumerPrefix; errs.KindFailedPrecondition), so that no ack id made up
	// by a pull consumer marks a push delivery delivered that its endpoint never received.
	Pusher bool
}

// PushConsumerPrefix starts the consumer name of every push worker, and of no pull consumer (the
// service refuses such names).
const PushConsumerPrefix = "push/"

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
	// Actor is who asked (an auth principal id), for the audit log.
	Actor string
}

// ClaimResult is what a claim did: the deliveries it leased, and those it found with an expired lease
// and no attempt left, which it made dead letters instead.
type ClaimResult struct {
	Claimed      []Claimed
	DeadLettered []*Delivery
}

// ReplayParams makes deliveries of events to a subscription pending at Now, with a fresh attempt
// budget: event EventID whatever the filter says, or else the events received in [From, To) (To zero:
// unbounded) that the subscription's filter matches, including events stored before the subscription.
// A delivery that is pending, leased or failed is left alone (counted as skipped).
type ReplayParams struct {
	SubscriptionID string
	EventID        string
	From, To       time.Time
	Now            time.Time
	Actor          string
}

// ReplayResult counts what a replay did.
type ReplayResult struct{ Replayed, Skipped int64 }

// PurgeParams deletes the events received before Before whose status is delivered (every delivery
// acked, or none wanted), with their deliveries and attempts, at most BatchSize events per transaction.
type PurgeParams struct {
	Before    time.Time
	Now       time.Time
	BatchSize int
	Actor     string
}

// PurgeResult counts what a purge deleted.
type PurgeResult struct{ Events, Deliveries int64 }

// Backlog is one subscription's undelivered deliveries at a time: counts by status and the create time
// of the oldest one not yet delivered nor dead (zero when none is).
type Backlog struct {
	SubscriptionID                      string
	Pending, Leased, Failed, DeadLetter int64
	OldestUndelivered                   time.Time
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

	// DeliveryClaim leases due deliveries (see ClaimParams) and reports those it made dead letters.
	DeliveryClaim(ctx context.Context, p ClaimParams) (ClaimResult, error)
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
	// DeliveryReplay: see ReplayParams.
	DeliveryReplay(ctx context.Context, p ReplayParams) (ReplayResult, error)
	// EventsPurge: see PurgeParams.
	EventsPurge(ctx context.Context, p PurgeParams) (PurgeResult, error)
	// SubscriptionRotateSecret makes secret a push subscription's signing secret; the former one signs
	// beside it until previousUntil, or is dropped when previousUntil is zero (errs.KindNotFound;
	// errs.KindFailedPrecondition for a pull subscription).
	SubscriptionRotateSecret(ctx context.Context, id string, secret []byte, previousUntil, now time.Time) (*Subscription, error)
	// SubscriptionBacklogs returns the backlog of every subscription, by subscription id.
	SubscriptionBacklogs(ctx context.Context) ([]Backlog, error)
}
