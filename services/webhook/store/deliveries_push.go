package store

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/sergas/core/internal/errs"
)

// PushDriver is what a backend supplies for push subscriptions and backlogs.
type PushDriver interface {
	// BacklogRows returns, from one snapshot, a row per status (pending, leased, failed, dead letter)
	// of every subscription that has deliveries in it, and one row with Status 0 for every subscription
	// that has none, in no particular order. Delivered rows are never read (SubscriptionBacklogsQuery).
	BacklogRows(ctx context.Context) ([]BacklogRow, error)
}

// PushTx is the push part of a delivery transaction.
type PushTx interface {
	// SubscriptionForUpdate reads subscription id and, on PostgreSQL, locks its row until the
	// transaction ends, so that two rotations of its secret run one after the other (errs.KindNotFound).
	SubscriptionForUpdate(ctx context.Context, id string) (*Subscription, error)
	// SubscriptionSecretsUpdate writes s.Push's Secret, PreviousSecret and PreviousSecretExpireTime and
	// s.UpdateTime to subscription s.ID.
	SubscriptionSecretsUpdate(ctx context.Context, s *Subscription) error
}

// BacklogRow is one row of PushDriver.BacklogRows: Count deliveries of the subscription in Status (0:
// the subscription has none), the oldest created at Oldest (zero for dead letters).
type BacklogRow struct {
	SubscriptionID string
	Status         DeliveryStatus
	Count          int64
	Oldest         time.Time
}

// SubscriptionRotateSecret implements DeliveryStore. The subscription is read locked and written in one
// transaction: two rotations at once run in turn, the second making the first one's secret its previous
// one, so that each secret a rotation returned as current is current or previous afterwards until
// another rotation replaces it in turn (none is lost by a rotation that read a stale row).
func (s Deliveries) SubscriptionRotateSecret(ctx context.Context, id string, secret []byte, previousUntil, now time.Time) (*Subscription, error) {
	if len(secret) == 0 {
		return nil, errs.Invalid("push signing secret is required")
	}
	now, previousUntil = micro(now), micro(previousUntil)
	if !previousUntil.IsZero() && !previousUntil.After(now) {
		return nil, errs.Invalid("the previous signing secret must be kept until a time after now, or not at all")
	}
	if !canonicalID(id) {
		return nil, subscriptionNotFound(id)
	}
	var out *Subscription
	err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		sub, err := tx.SubscriptionForUpdate(ctx, id)
		if errs.KindOf(err) == errs.KindNotFound {
			return subscriptionNotFound(id)
		}
		if err != nil {
			return err
		}
		if sub.Mode != SubscriptionPush || sub.Push == nil {
			return errs.New(errs.KindFailedPrecondition, "subscription %s is a pull subscription: it has no signing secret", id)
		}
		p := *sub.Push
		p.Secret, p.PreviousSecret, p.PreviousSecretExpireTime = slices.Clone(secret), nil, time.Time{}
		if !previousUntil.IsZero() {
			p.PreviousSecret, p.PreviousSecretExpireTime = sub.Push.Secret, previousUntil
		}
		sub.Push, sub.UpdateTime = &p, now
		if err := tx.SubscriptionSecretsUpdate(ctx, sub); err != nil {
			return err
		}
		out = sub
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SubscriptionBacklogs implements DeliveryStore: every subscription, in id order, zeros for one that is
// owed nothing.
func (s Deliveries) SubscriptionBacklogs(ctx context.Context) ([]Backlog, error) {
	rows, err := s.D.BacklogRows(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*Backlog, len(rows))
	for _, r := range rows {
		b := byID[r.SubscriptionID]
		if b == nil {
			b = &Backlog{SubscriptionID: r.SubscriptionID}
			byID[r.SubscriptionID] = b
		}
		switch r.Status {
		case DeliveryPending:
			b.Pending += r.Count
		case DeliveryLeased:
			b.Leased += r.Count
		case DeliveryFailed:
			b.Failed += r.Count
		case DeliveryDeadLetter:
			b.DeadLetter += r.Count
		}
		if r.Status != DeliveryDeadLetter && !r.Oldest.IsZero() && (b.OldestUndelivered.IsZero() || r.Oldest.Before(b.OldestUndelivered)) {
			b.OldestUndelivered = r.Oldest
		}
	}
	out := make([]Backlog, 0, len(byID))
	for _, b := range byID {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b Backlog) int { return cmp.Compare(a.SubscriptionID, b.SubscriptionID) })
	return out, nil
}

// SubscriptionForUpdateQuery reads subscription $1 with its row locked (PostgreSQL; SQLite's single
// writer needs no lock and reads SubscriptionGetQuery).
func SubscriptionForUpdateQuery(text string) string {
	return SubscriptionGetQuery(text) + ` FOR UPDATE`
}

// SubscriptionSecretsSQL sets the signing secrets of push subscription $1: $2 push_secret,
// $3 push_previous_secret, $4 push_previous_secret_expire_time, $5 update_time.
const SubscriptionSecretsSQL = `UPDATE subscriptions SET push_secret = $2, push_previous_secret = $3,
		push_previous_secret_expire_time = $4, update_time = $5
	WHERE id = $1 AND mode = 2`

// SubscriptionBacklogsQuery reads, as BacklogRows, each subscription's deliveries counted by status:
// the outstanding ones from the partial deliveries_due index (its predicate written literally, so that
// a planner may use it), the dead letters from deliveries_status_id, so that no delivered row is read
// however many there are. Each outstanding row is visited once (the count and oldest create time need
// its status and create time); a subscription with none of either joins as one row of NULLs. text reads
// uuid as text (PostgreSQL).
func SubscriptionBacklogsQuery(text string) string {
	return `SELECT s.id` + text + `, b.status, b.n, b.oldest FROM subscriptions AS s LEFT JOIN (
		SELECT subscription_id, status, count(*) AS n, min(create_time) AS oldest FROM deliveries
			WHERE status IN (1, 2, 4) GROUP BY subscription_id, status
		UNION ALL
		SELECT subscription_id, status, count(*) AS n, NULL AS oldest FROM deliveries
			WHERE status = 5 GROUP BY subscription_id, status
	) AS b ON b.subscription_id = s.id`
}

// PushFromColumns is the mode and push configuration of a subscription from its pushColumns as the
// drivers scan them (prevExpire zero when NULL): nil for a pull subscription.
func PushFromColumns(mode int32, endpoint string, allowPrivate bool, timeoutMS int64, secret, prev []byte, prevExpire time.Time) (SubscriptionMode, *PushConfig) {
	m := SubscriptionMode(mode)
	if m != SubscriptionPush {
		return m, nil
	}
	p := &PushConfig{Endpoint: endpoint, AllowPrivateNetwork: allowPrivate, Timeout: time.Duration(timeoutMS) * time.Millisecond,
		Secret: secret, PreviousSecret: prev}
	if len(prev) == 0 {
		p.PreviousSecret = nil
	}
	if !prevExpire.IsZero() {
		p.PreviousSecretExpireTime = prevExpire.UTC()
	}
	return m, p
}

// PushArgs are the arguments of pushColumns for s, in order, the times given as timeArg makes them: a
// pull subscription's are the columns' defaults. Secrets absent are NULL (nil), never an empty value.
func PushArgs(s *Subscription, timeArg func(time.Time) any) []any {
	p := s.Push
	if p == nil {
		return []any{int16(SubscriptionPull), "", false, int64(0), nil, nil, nil}
	}
	return append([]any{int16(s.Mode), p.Endpoint, p.AllowPrivateNetwork, p.Timeout.Milliseconds()}, SecretArgs(p, timeArg)...)
}

// SecretArgs are the arguments of push_secret, push_previous_secret and push_previous_secret_expire_time
// for p (NULL for what is absent).
func SecretArgs(p *PushConfig, timeArg func(time.Time) any) []any {
	args := []any{nullBytes(p.Secret), nullBytes(p.PreviousSecret), nil}
	if !p.PreviousSecretExpireTime.IsZero() {
		args[2] = timeArg(p.PreviousSecretExpireTime)
	}
	return args
}

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
