package auth

import (
	"time"

	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/ratelimit"
)

// Class groups RPCs by what a call costs and how often a well-behaved client makes it; each class has its
// own per-credential budget, so that a fleet's hot-path reads are not throttled like administration.
type Class string

// The classes.
const (
	// ClassRead: reads (token:read's GetAccessToken is the hot path, audit:read, webhook:read).
	ClassRead Class = "read"
	// ClassWrite: writes (audit:write, webhook:consume) and anything not read, admin or ingest.
	ClassWrite Class = "write"
	// ClassIngest: webhook:ingest, the gateway's own credential handing webhook deliveries over. It has no
	// per-credential budget: the webhook service bounds every delivery by its sender's address and by its
	// source (WEBHOOK_ADDRESS_RATE_LIMIT_*, WEBHOOK_RATE_LIMIT_*), where one budget of the gateway's one
	// key would be shared by every source and sender, so that one busy source could get every other
	// source's deliveries refused, and would have to be kept above the sum of the sources' rates.
	ClassIngest Class = "ingest"
	// ClassAdmin: administration (token:admin, audit:admin, webhook:admin).
	ClassAdmin Class = "admin"
)

// ClassOf is the class of an RPC that needs scope.
func ClassOf(scope string) Class {
	switch scope {
	case ScopeTokenRead, ScopeAuditRead, ScopeWebhookRead:
		return ClassRead
	case ScopeTokenAdmin, ScopeAuditAdmin, ScopeWebhookAdmin:
		return ClassAdmin
	case ScopeWebhookIngest:
		return ClassIngest
	}
	return ClassWrite
}

// Rate is a token bucket: PerSecond calls a second (<= 0: unlimited) with bursts of Burst.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Limits are the budgets the guard enforces.
type Limits struct {
	// Read, Write and Admin are per credential and class.
	Read, Write, Admin Rate
	// Failures is per client address, for calls that fail authentication or authorisation. Once an
	// address has spent it, only calls with a credential that is cheap to verify and valid (an API key, a
	// mapped TLS identity) are let through; the rest are refused before anything costly is checked.
	Failures Rate
}

// InternalRate is the budget of each internal client (the key the services write denials and token
// events to the audit log with). It is not configurable: it exists only so that a leaked internal key
// is still bounded, and it is never shared with callers, so that no caller can spend it.
var InternalRate = Rate{PerSecond: 1000, Burst: 2000}

// Limiters holds the buckets of one process.
type Limiters struct {
	classes  map[Class]*ratelimit.Keyed
	failures *ratelimit.Keyed
	internal *ratelimit.Keyed
	// internalIDs are principals that are the platform's own clients.
	internalIDs map[string]bool
}

// NewLimiters returns the buckets for l; internal names the principals (such as "apikey:audit-writer")
// that get a budget of their own instead of a caller's.
func NewLimiters(l Limits, internal ...string) *Limiters {
	mk := func(r Rate) *ratelimit.Keyed { return ratelimit.New(r.PerSecond, r.Burst) }
	ls := &Limiters{
		classes:     map[Class]*ratelimit.Keyed{ClassRead: mk(l.Read), ClassWrite: mk(l.Write), ClassAdmin: mk(l.Admin)},
		failures:    mk(l.Failures),
		internal:    mk(InternalRate),
		internalIDs: map[string]bool{},
	}
	for _, id := range internal {
		if id != "" {
			ls.internalIDs[id] = true
		}
	}
	return ls
}

// Internal reports whether principal id is one of the platform's own clients.
func (l *Limiters) Internal(id string) bool { return l.internalIDs[id] }

// allow spends one call of key (a principal id, or an address when authentication is off) in class.
func (l *Limiters) allow(internal bool, class Class, key string, now time.Time) (bool, time.Duration) {
	if internal {
		return l.internal.Allow(key, now)
	}
	if class == ClassIngest {
		return true, 0
	}
	return l.classes[class].Allow(key, now)
}

// failed spends one failure of addr.
func (l *Limiters) failed(addr string, now time.Time) { l.failures.Allow(addressKey(addr), now) }

// blocked reports whether addr has spent its failures.
func (l *Limiters) blocked(addr string, now time.Time) (bool, time.Duration) {
	return l.failures.Blocked(addressKey(addr), now)
}

// addressKey is the budget an address spends from (clientaddr.Bucket: an IPv6 client's whole /64).
func addressKey(addr string) string { return clientaddr.Bucket(addr) }
