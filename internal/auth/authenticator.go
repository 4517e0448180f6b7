package auth

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Authenticator turns the credentials of an incoming RPC into a Principal. At most one of the bearer
// token and the TLS identity is used: a bearer token, when sent, always wins, so that a gateway holding a
// client certificate passes its callers' credentials through without lending them its own identity.
type Authenticator struct {
	// Disabled lets every call through as "anonymous" with every scope (AUTH_DISABLED=true).
	Disabled bool
	APIKeys  func() APIKeySet // nil: API keys not configured
	JWT      *JWTVerifier     // nil: JWTs not configured
	TLS      TLSIdentities    // nil: no certificate identities mapped
	Now      func() time.Time
}

// Configured reports whether any way of authenticating is set up.
func (a *Authenticator) Configured() bool {
	return a.APIKeys != nil || a.JWT != nil || len(a.TLS) > 0
}

// Authenticate returns the caller, or the reason it could not be established.
func (a *Authenticator) Authenticate(ctx context.Context) (*Principal, Reason) {
	p, r, _ := a.identify(ctx, false)
	return p, r
}

// identify is Authenticate that also names the caller of a refused credential when the credential was
// genuine but is no longer valid (an expired or revoked key, an expired JWT with a good signature).
// cheapOnly (the client's address has spent its failures) leaves a JWT unverified, its signature being
// the one check an attacker can make costly; it is refused with ReasonAddressLimited.
func (a *Authenticator) identify(ctx context.Context, cheapOnly bool) (p *Principal, r Reason, claimed string) {
	if a.Disabled {
		return &Principal{ID: "anonymous", Scopes: AllScopes}, "", ""
	}
	// ValueFromIncomingContext reads one key without copying the whole metadata map (FromIncomingContext
	// copies it: measurable on the hot path).
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	switch {
	case len(values) > 1:
		return nil, ReasonMalformed, ""
	case len(values) == 1:
		return a.bearer(values[0], cheapOnly)
	}
	if pe, ok := peer.FromContext(ctx); ok && len(a.TLS) > 0 {
		if info, ok := pe.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 {
			if pr := a.TLS.principal(info.State.VerifiedChains[0][0]); pr != nil {
				return pr, "", ""
			}
		}
	}
	return nil, ReasonMissing, ""
}

// bearer checks an Authorization header value: "Bearer <API key or JWT>".
func (a *Authenticator) bearer(header string, cheapOnly bool) (*Principal, Reason, string) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" || len(token) > 8192 {
		return nil, ReasonMalformed, ""
	}
	now := a.now()
	switch {
	case strings.HasPrefix(token, apiKeyPrefix):
		if a.APIKeys == nil {
			return nil, ReasonInvalid, ""
		}
		return verifyAPIKey(a.APIKeys(), token, now)
	case strings.Count(token, ".") == 2:
		if a.JWT == nil {
			return nil, ReasonInvalid, ""
		}
		if cheapOnly {
			return nil, ReasonAddressLimited, ""
		}
		return a.JWT.verify(token, now)
	}
	return nil, ReasonMalformed, ""
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}
