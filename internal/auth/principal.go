package auth

import (
	"context"
	"slices"
	"time"
)

// Principal is an authenticated caller.
type Principal struct {
	// ID names the caller in logs and audit events: "apikey:<id>", "jwt:<issuer>#<subject>" or
	// "mtls:<identity>". Never a secret.
	ID     string
	Scopes []string
	// Expires is when the credential stops being valid (zero: never).
	Expires time.Time
}

// Has reports whether p holds scope.
func (p *Principal) Has(scope string) bool { return p != nil && slices.Contains(p.Scopes, scope) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller of the current RPC, or nil for a public method.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
