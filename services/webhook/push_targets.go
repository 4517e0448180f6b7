package webhook

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/webhook/store"
)

// pushTargetsTTL is how long the workers use one reading of the push subscriptions: a subscription
// created, paused, rotated or deleted on another replica is seen within it (on this one at once).
const pushTargetsTTL = time.Second

// pushGeneration counts changes to push subscriptions made through this process; a reading of the
// targets made before the latest change is read again.
var pushGeneration atomic.Uint64

// pushChanged tells the push workers that subscriptions changed (create, pause, resume, delete, rotate).
// It is process-wide, not per server: a change costs the other servers of a test process one extra
// reading, nothing more.
func pushChanged() { pushGeneration.Add(1) }

// pushTarget is an active push subscription ready to send to: its signing keys opened.
type pushTarget struct {
	sub *store.Subscription
	// key signs every request; previous signs beside it until previousUntil.
	key, previous []byte
	previousUntil time.Time
}

// keysAt are the keys that sign a request made at now: the current one, then the previous one while it
// lasts.
func (t *pushTarget) keysAt(now time.Time) [][]byte {
	if t.previous != nil && now.Before(t.previousUntil) {
		return [][]byte{t.key, t.previous}
	}
	return [][]byte{t.key}
}

// pushTargets caches the active push subscriptions for the workers of one server.
type pushTargets struct {
	mu     sync.Mutex
	list   []*pushTarget
	loaded time.Time // zero: never
	gen    uint64
	// unopened are the subscriptions whose secret could not be opened, logged once each.
	unopened map[string]bool
}

// get returns the active push subscriptions, read again when the reading is older than pushTargetsTTL
// or a change was made since. One reader reads; workers asking meanwhile wait for its answer.
func (p *pusher) targets(ctx context.Context) ([]*pushTarget, error) {
	c := &p.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := pushGeneration.Load()
	if !c.loaded.IsZero() && time.Since(c.loaded) < pushTargetsTTL && c.gen == gen {
		return c.list, nil
	}
	list, err := p.loadTargets(ctx)
	if err != nil {
		return nil, err
	}
	c.list, c.loaded, c.gen = list, time.Now(), gen
	return list, nil
}

// loadTargets reads every subscription and keeps the active push ones whose secrets open.
func (p *pusher) loadTargets(ctx context.Context) ([]*pushTarget, error) {
	var out []*pushTarget
	params := store.SubscriptionListParams{Limit: 1000}
	// Each page moves AfterID forward, so the loop ends with the last page.
	for {
		subs, err := p.s.deliveries.SubscriptionList(ctx, params)
		if err != nil {
			return nil, err
		}
		for _, sub := range subs {
			if sub.Mode != store.SubscriptionPush || sub.State != store.SubscriptionActive || sub.Push == nil {
				continue
			}
			if t := p.openTarget(sub); t != nil {
				out = append(out, t)
			}
		}
		if len(subs) < params.Limit {
			return out, nil
		}
		params.AfterID = subs[len(subs)-1].ID
	}
}

// openTarget opens sub's signing secrets; nil (logged once per subscription) when they do not open: its
// deliveries wait, untouched, until the key is restored to WEBHOOK_ENCRYPTION_KEYS.
func (p *pusher) openTarget(sub *store.Subscription) *pushTarget {
	t := &pushTarget{sub: sub}
	var err error
	if t.key, err = openSigningSecret(p.s.ring, sub.ID, sub.Push.Secret); err == nil && len(sub.Push.PreviousSecret) > 0 {
		t.previous, err = openSigningSecret(p.s.ring, sub.ID, sub.Push.PreviousSecret)
		t.previousUntil = sub.Push.PreviousSecretExpireTime
	}
	c := &p.cache
	if err != nil {
		if c.unopened == nil {
			c.unopened = map[string]bool{}
		}
		if !c.unopened[sub.ID] {
			c.unopened[sub.ID] = true
			p.s.log.Error("push subscription's signing secret cannot be opened: its deliveries wait; check WEBHOOK_ENCRYPTION_KEYS",
				"service", "webhook", "subscription", sub.ID, "error", err.Error())
		}
		return nil
	}
	delete(c.unopened, sub.ID)
	return t
}

// errNoKeyring is why a stored push secret cannot be opened without WEBHOOK_ENCRYPTION_KEYS.
type errNoKeyring struct{}

func (errNoKeyring) Error() string { return "WEBHOOK_ENCRYPTION_KEYS is not set" }

// openSigningSecret opens a sealed "whsec_" secret of subscription id and returns its key. Errors name
// the keyring's problem, never the secret.
func openSigningSecret(ring *keyring.Keyring, id string, sealed []byte) ([]byte, error) {
	if ring == nil {
		return nil, errNoKeyring{}
	}
	secret, err := ring.Open(sealed, pushSecretAAD(id))
	if err != nil {
		return nil, err
	}
	return parseStandardSecret(string(secret))
}

// current is t as read after the latest change to push subscriptions made through this process: a
// rotation that committed after t was read and before the claim (so before the events it took were
// stored, or at least before they were claimed) signs what the claim took. t itself when the
// subscription is no longer an active push target (what was claimed is still sent).
//
// It looks t up in the cache rather than asking whether the cache changed since t's pass: another worker
// may have read the subscriptions again after the change, leaving the cache current and t stale (a CI
// run and -count=5 of TestPushRotation caught a push signed with the dropped secret that way).
func (p *pusher) current(ctx context.Context, t *pushTarget) *pushTarget {
	ts, err := p.targets(ctx)
	if err != nil {
		return t
	}
	for _, n := range ts {
		if n.sub.ID == t.sub.ID {
			return n
		}
	}
	return t
}
