package clientaddr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"google.golang.org/grpc/peer"
)

// A TCP peer read from its IP gives what formatting it as "host:port" and parsing that back gives.
func TestTCPPeerReadWithoutFormatting(t *testing.T) {
	addrs := []*net.TCPAddr{
		{IP: net.IPv4(127, 0, 0, 1), Port: 1},
		{IP: net.IPv4(10, 1, 2, 3).To4(), Port: 2},
		{IP: net.ParseIP("::1"), Port: 3},
		{IP: net.ParseIP("2001:db8::7"), Port: 4},
		{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 5},
		{IP: net.ParseIP("fe80::1"), Port: 6, Zone: "eth0"},
		{IP: net.IPv4(192, 0, 2, 9), Port: 7, Zone: "eth0"},
		{IP: nil, Port: 8},
		{IP: net.IP{1, 2, 3}, Port: 9},
	}
	for _, a := range addrs {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: a})
		got, gotOK := peerAddr(ctx)
		want, wantOK := parseHostPort(a.String())
		if got != want || gotOK != wantOK {
			t.Errorf("%v: read %v %v, parsed %v %v", a, got, gotOK, want, wantOK)
		}
	}
}

// The bucket of an IPv4 address is the address as given, as it was when it was parsed and formatted.
func TestBucketOfIPv4IsTheAddressAsGiven(t *testing.T) {
	old := func(addr string) string {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return addr
		}
		if a = a.Unmap(); a.Is4() {
			return a.String()
		}
		p, _ := a.Prefix(64)
		return p.String()
	}
	cases := []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "::ffff:1.2.3.4", "2001:db8::1", "unknown", ""}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		cases = append(cases, fmt.Sprintf("%d.%d.%d.%d", r.IntN(300), r.IntN(300), r.IntN(300), r.IntN(300)),
			fmt.Sprintf("%03d.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256)))
	}
	for _, c := range cases {
		if got, want := Bucket(c), old(c); got != want {
			t.Fatalf("Bucket(%q) = %q, want %q", c, got, want)
		}
	}
}
