// Package auth decides who is calling and whether they may: bearer API keys, JWTs and mTLS identities
// become a Principal with scopes; each service declares the scope every RPC needs; everything else is
// denied.
package auth

import "slices"

// The scopes. Each RPC needs exactly one; see each service's Policy.
const (
	ScopeTokenRead      = "token:read"
	ScopeTokenAdmin     = "token:admin"
	ScopeAuditWrite     = "audit:write"
	ScopeAuditRead      = "audit:read"
	ScopeAuditAdmin     = "audit:admin"
	ScopeWebhookRead    = "webhook:read"
	ScopeWebhookIngest  = "webhook:ingest" // the gateway's: it hands inbound webhooks to Ingest
	ScopeWebhookConsume = "webhook:consume"
	ScopeWebhookAdmin   = "webhook:admin"
)

// AllScopes lists every scope; configured credentials may only name these.
var AllScopes = []string{ScopeTokenRead, ScopeTokenAdmin, ScopeAuditWrite, ScopeAuditRead, ScopeAuditAdmin,
	ScopeWebhookRead, ScopeWebhookIngest, ScopeWebhookConsume, ScopeWebhookAdmin}

// KnownScope reports whether s is one of AllScopes.
func KnownScope(s string) bool { return slices.Contains(AllScopes, s) }

// Policy maps full gRPC method names ("/pkg.Service/Method") to the scope they need. Methods listed in
// Public need no credential at all.
type Policy struct {
	Scopes map[string]string
	Public []string
}

// Requirement returns the scope method needs, whether it is public, and whether the policy knows the
// method at all (an unknown method is denied).
func (p Policy) Requirement(method string) (scope string, public, known bool) {
	if slices.Contains(p.Public, method) {
		return "", true, true
	}
	scope, known = p.Scopes[method]
	return scope, false, known
}

// Merge combines policies (the all-in-one process serves several services through one interceptor).
func Merge(ps ...Policy) Policy {
	out := Policy{Scopes: map[string]string{}}
	for _, p := range ps {
		for m, s := range p.Scopes {
			out.Scopes[m] = s
		}
		out.Public = append(out.Public, p.Public...)
	}
	return out
}

// InfrastructurePublic are the methods every server exposes without credentials: health checks (for
// load balancers and probes) and server reflection (it reveals the schema, never data).
var InfrastructurePublic = []string{
	"/grpc.health.v1.Health/Check",
	"/grpc.health.v1.Health/Watch",
	"/grpc.health.v1.Health/List",
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}
