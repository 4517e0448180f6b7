// Package lazyconn is a gRPC connection from one service to another that exists before the other's
// address is known (the all-in-one process learns it only once that service has bound its port) and
// presents the service's own API key on every call.
package lazyconn

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/tracing"
)

// Conn is a connection that is dialled once, by Connect; until then calls fail as Unavailable.
type Conn struct {
	apiKey string
	what   string
	mu     sync.Mutex
	conn   *grpc.ClientConn
	ready  chan struct{}
}

// New returns an unconnected Conn to the service named what (for error messages) that authenticates
// with apiKey (empty when the client certificate is mapped to the scopes it needs instead).
func New(what, apiKey string) *Conn {
	return &Conn{what: what, apiKey: apiKey, ready: make(chan struct{})}
}

// Connect dials endpoint; call it once. Every call makes a client span and carries the caller's trace
// (traceparent) to the other service.
func (c *Conn) Connect(endpoint string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(creds), tracing.DialOption(), RoundRobin)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	close(c.ready)
	return nil
}

// Ready is closed once Connect has been called.
func (c *Conn) Ready() <-chan struct{} { return c.ready }

// Get returns the connection and ctx carrying the API key, or Unavailable before Connect.
func (c *Conn) Get(ctx context.Context) (grpc.ClientConnInterface, context.Context, error) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return nil, ctx, status.Errorf(codes.Unavailable, "%s service not connected yet", c.what)
	}
	if c.apiKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.apiKey)
	}
	return conn, ctx, nil
}

// Close closes the connection, if it was made.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

// RoundRobin spreads a client's calls over every address its endpoint resolves to: a dns:/// name of a
// headless Kubernetes Service lists each pod, and gRPC's default (pick_first) would send every call to one
// of them. A single address is unaffected.
var RoundRobin = grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`)
