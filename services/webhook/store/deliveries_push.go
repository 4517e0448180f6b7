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
	// BacklogRows returns, from one snapshot, the backlog of every subscription, in no particular order
	// (SubscriptionBacklogsQuery): no delivered row is read.
	BacklogRows(ctx context.Context) ([]Backlog, error)
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
	out, err := s.D.BacklogRows(ctx)
	if err != nil {
		return nil, err
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

// SubscriptionBacklogsQuery reads every subscription's backlog: subscription id, pending, leased,
// failed, dead letters, oldest create time of the first three (NULL when none). The outstanding
// deliveries are grouped by subscription from the partial deliveries_due index (its predicate written
// literally, so that a planner may use it; it is in subscription order), the dead letters from
// deliveries_status_id: no delivered row is read however many there are. Each outstanding row is visited
// once (its status and create time are in the table). text reads uuid as text (PostgreSQL).
func SubscriptionBacklogsQuery(text string) string {
	return `SELECT s.id` + text + `, coalesce(o.pending, 0), coalesce(o.leased, 0), coalesce(o.failed, 0), coalesce(d.dead, 0), o.oldest
	FROM subscriptions AS s
	LEFT JOIN (SELECT subscription_id, sum(CASE WHEN status = 1 THEN 1 ELSE 0 END) AS pending,
			sum(CASE WHEN status = 2 THEN 1 ELSE 0 END) AS leased, sum(CASE WHEN status = 4 THEN 1 ELSE 0 END) AS failed,
			min(create_time) AS oldest
		FROM deliveries WHERE status IN (1, 2, 4) GROUP BY subscription_id) AS o ON o.subscription_id = s.id
	LEFT JOIN (SELECT subscription_id, count(*) AS dead FROM deliveries WHERE status = 5 GROUP BY subscription_id) AS d
		ON d.subscription_id = s.id`
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
