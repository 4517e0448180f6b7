package auth

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/sergas/core/internal/clientaddr"
)

// The guard fills the server's empty Call in place (the log line reads the address from it) and the
// handler's context carries the principal and the address, in that one value.
func TestGuardCompletesTheServersCall(t *testing.T) {
	loopback, _ := clientaddr.Parse(clientaddr.Loopback)
	key, err := NewAPIKey("k")
	if err != nil {
		t.Fatal(err)
	}
	authn := &Authenticator{APIKeys: func() APIKeySet {
		return APIKeySet{"k": {ID: "k", SHA256: HashAPIKey(key), Scopes: []string{ScopeTokenRead}}}
	}}
	g := NewGuard(authn, Policy{Scopes: map[string]string{"/t.S/M": ScopeTokenRead}}, NewLimiters(DefaultLimits), loopback, nil)
	ctx := metadata.NewIncomingContext(peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}}), metadata.Pairs("authorization", "Bearer "+key))
	ctx, call := WithClientAddrSlot(ctx)
	var gotAddr string
	var got *Principal
	_, err = g.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/t.S/M"}, func(ctx context.Context, _ any) (any, error) {
		gotAddr, got = ClientAddr(ctx), FromContext(ctx)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if call.ClientAddr() != "127.0.0.1" || gotAddr != "127.0.0.1" || got == nil || got.ID != "apikey:k" {
		t.Fatalf("slot %q, handler saw %q and %+v", call.ClientAddr(), gotAddr, got)
	}
}

// WithPrincipal and WithClientAddr keep what the context already carries, never change the parent's,
// and a context carrying a Call still cancels, times out and finds other values through its parent.
func TestCallContextValues(t *testing.T) {
	type otherKey struct{}
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), otherKey{}, "v"), time.Hour)
	defer cancel()
	a := WithClientAddr(parent, "192.0.2.1")
	p := &Principal{ID: "apikey:x"}
	b := WithPrincipal(a, p)
	if FromContext(a) != nil {
		t.Fatal("WithPrincipal changed its parent")
	}
	if ClientAddr(b) != "192.0.2.1" || FromContext(b) != p {
		t.Fatalf("WithPrincipal lost the address: %q %v", ClientAddr(b), FromContext(b))
	}
	c := WithClientAddr(b, "192.0.2.2")
	if ClientAddr(c) != "192.0.2.2" || FromContext(c) != p || ClientAddr(b) != "192.0.2.1" {
		t.Fatalf("WithClientAddr over a principal: %q %v; parent now %q", ClientAddr(c), FromContext(c), ClientAddr(b))
	}
	if c.Value(otherKey{}) != "v" {
		t.Fatal("other values are not found through the Call")
	}
	if d1, _ := c.Deadline(); d1.IsZero() {
		t.Fatal("the deadline is lost")
	}
	child, stop := context.WithCancel(c)
	defer stop()
	cancel()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the parent did not reach a child of the Call's context")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err = %v", c.Err())
	}
	if ClientAddr(context.Background()) != "" || FromContext(context.Background()) != nil {
		t.Fatal("a bare context carries a call")
	}
}
