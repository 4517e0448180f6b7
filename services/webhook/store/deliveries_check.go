package store

import (
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/errs"
)

// canonicalID reports whether id is a UUID in the canonical lower-case form the store keeps. PostgreSQL
// keeps ids as uuid, which parses "ABC…" as "abc…" and refuses text that is no UUID with an error, while
// SQLite compares text: the store queries with canonical ids only, so that both find the same rows (an id
// in another form names nothing on either).
func canonicalID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && len(id) == 36 && u.String() == id
}

// CheckSubscription refuses, with errs.KindInvalid, a subscription neither backend could store the same
// way (the database's CHECKs would refuse most of it too, but as an internal error).
func CheckSubscription(s *Subscription) error {
	if !canonicalID(s.ID) {
		return errs.Invalid("subscription id must be a lower-case UUID")
	}
	if s.Name == "" || !storableText(s.Name) {
		return errs.Invalid("subscription name must be non-empty UTF-8 text without NUL")
	}
	for _, list := range [][]string{s.Filter.Sources, s.Filter.Modules, s.Filter.Operations, s.Filter.EventTypes} {
		for _, v := range list {
			if !storableText(v) {
				return errs.Invalid("subscription filter values must be UTF-8 text without NUL")
			}
		}
	}
	r := s.Retry
	switch {
	case r.MaxRetries < 0:
		return errs.Invalid("subscription max retries must not be negative")
	case r.BackoffBase < 0 || r.BackoffCap < r.BackoffBase:
		return errs.Invalid("subscription backoff base must not be negative nor above the cap")
	case s.LeaseDuration < time.Millisecond:
		return errs.Invalid("subscription lease duration must be at least 1ms")
	case s.State != SubscriptionActive && s.State != SubscriptionPaused:
		return errs.Invalid("subscription state %d is not active (1) or paused (2)", s.State)
	case s.CreateTime.IsZero() || s.UpdateTime.IsZero():
		return errs.Invalid("subscription create and update times are required")
	}
	return checkMode(s)
}

// checkMode refuses a mode the store does not know, a push configuration on a pull subscription (zero
// Mode is pull), and a push subscription without a usable one: the database's CHECK would refuse some
// of these only as an internal error, and some not at all (a timeout at or above the lease would let a
// lease end while its request is still running).
func checkMode(s *Subscription) error {
	switch s.Mode {
	case 0, SubscriptionPull:
		if s.Push != nil {
			return errs.Invalid("a pull subscription has no push configuration")
		}
		return nil
	case SubscriptionPush:
	default:
		return errs.Invalid("subscription mode %d is not pull (1) or push (2)", s.Mode)
	}
	p := s.Push
	switch {
	case p == nil:
		return errs.Invalid("a push subscription needs a push configuration")
	case p.Endpoint == "" || !storableText(p.Endpoint):
		return errs.Invalid("push endpoint must be non-empty UTF-8 text without NUL")
	case p.Timeout.Truncate(time.Millisecond) <= 0:
		return errs.Invalid("push timeout must be at least 1ms")
	case p.Timeout.Truncate(time.Millisecond) >= s.LeaseDuration.Truncate(time.Millisecond):
		return errs.Invalid("push timeout must be shorter than the lease duration")
	case len(p.Secret) == 0:
		return errs.Invalid("push signing secret is required")
	case (len(p.PreviousSecret) == 0) != p.PreviousSecretExpireTime.IsZero():
		return errs.Invalid("previous push signing secret and its expire time go together")
	}
	return nil
}

// checkSettle refuses a settle whose attempt neither backend could store alike: an error or response
// excerpt that is not text, an excerpt over MaxResponseExcerpt bytes, an HTTP status outside 0-999. The
// push workers cut the excerpt; a longer one here is their bug, refused rather than cut silently.
func checkSettle(p SettleParams) error {
	switch {
	case !storableText(p.Error):
		return errs.Invalid("delivery error must be UTF-8 text without NUL")
	case p.HTTPStatus < 0 || p.HTTPStatus > 999:
		return errs.Invalid("attempt HTTP status %d is not 0 (no answer) nor a status code", p.HTTPStatus)
	case len(p.Response) > MaxResponseExcerpt:
		return errs.Invalid("attempt response excerpt is %d bytes, over %d", len(p.Response), MaxResponseExcerpt)
	case !storableText(p.Response):
		return errs.Invalid("attempt response excerpt must be UTF-8 text without NUL")
	}
	return nil
}

// NormaliseSubscription makes s what a read returns: durations to the millisecond, times UTC to the
// microsecond, empty filter lists nil, a zero mode pull, an empty previous secret nil.
func NormaliseSubscription(s *Subscription) {
	s.Retry.BackoffBase = s.Retry.BackoffBase.Truncate(time.Millisecond)
	s.Retry.BackoffCap = s.Retry.BackoffCap.Truncate(time.Millisecond)
	s.LeaseDuration = s.LeaseDuration.Truncate(time.Millisecond)
	s.CreateTime, s.UpdateTime = micro(s.CreateTime), micro(s.UpdateTime)
	for _, l := range []*[]string{&s.Filter.Sources, &s.Filter.Modules, &s.Filter.Operations, &s.Filter.EventTypes} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if s.Mode == 0 {
		s.Mode = SubscriptionPull
	}
	if p := s.Push; p != nil {
		p.Timeout = p.Timeout.Truncate(time.Millisecond)
		p.PreviousSecretExpireTime = micro(p.PreviousSecretExpireTime)
		if len(p.PreviousSecret) == 0 {
			p.PreviousSecret = nil
		}
	}
}

// micro is t as both backends store it: UTC, whole microseconds; the zero time stays zero.
func micro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(time.Microsecond).UTC()
}

// WithStatus returns copies of es with the status the drivers store them with before their fan-out:
// pending when a subscription may want them (wanted), else delivered.
func WithStatus(es []*Event, wanted bool) []*Event {
	status := StatusDelivered
	if wanted {
		status = StatusPending
	}
	out := make([]*Event, len(es))
	for i, e := range es {
		c := *e
		c.Status = status
		out[i] = &c
	}
	return out
}
