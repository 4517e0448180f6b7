// Package client is the Go client of Sergas Core for agents: it dials a service with TLS, mTLS or (for a
// mesh sidecar, when asked) plaintext, sends a bearer credential, retries only what is safe to retry, and
// wraps the common calls: an access token, an audit event, and a loop that consumes webhook deliveries.
//
// It depends on the generated stubs (github.com/sergas/core/gen) and gRPC alone, never on the services.
package client
