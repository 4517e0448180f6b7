package lazyconn

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// TestCallsSpreadOverResolvedAddresses: an endpoint that resolves to two servers (as a headless
// Service's dns:/// name resolves to every pod) gets calls on both, not all on the first.
func TestCallsSpreadOverResolvedAddresses(t *testing.T) {
	var addrs []resolver.Address
	for range 2 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		addrs = append(addrs, resolver.Address{Addr: lis.Addr().String()})
	}
	r := manual.NewBuilderWithScheme("lazyconnbalance")
	r.InitialState(resolver.State{Addresses: addrs})
	resolver.Register(r)

	c := New("test", "")
	if err := c.Connect("lazyconnbalance:///pods", insecure.NewCredentials()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, ctx, err := c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	hc := healthpb.NewHealthClient(cc)
	for i := 0; i < 200 && len(seen) < 2; i++ {
		var p peer.Peer
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
		seen[p.Addr.String()]++
	}
	if len(seen) != 2 {
		t.Fatalf("calls reached %v: want both servers", seen)
	}
}
