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

// WithPrincipal returns ctx carrying p (and the client's address that ctx carries).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	ctx, c := with(ctx)
	c.principal = p
	return ctx
}

// FromContext returns the caller of the current RPC, or nil for a public method.
func FromContext(ctx context.Context) *Principal {
	if c := callOf(ctx); c != nil {
		return c.principal
	}
	return nil
}
