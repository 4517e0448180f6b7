package clientaddr

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

func TestFromHTTP(t *testing.T) {
	lb, _ := Parse([]string{"10.0.0.0/8"})
	cases := []struct {
		name, remote string
		xff          []string
		trusted      Trusted
		want         string
	}{
		{"no proxy trusted: header ignored", "203.0.113.9:5000", []string{"1.2.3.4"}, Trusted{}, "203.0.113.9"},
		{"untrusted peer: header ignored", "203.0.113.9:5000", []string{"1.2.3.4"}, lb, "203.0.113.9"},
		{"trusted peer: rightmost untrusted", "10.1.1.1:5000", []string{"6.6.6.6, 1.2.3.4, 10.2.2.2"}, lb, "1.2.3.4"},
		{"several header lines", "10.1.1.1:5000", []string{"6.6.6.6", "1.2.3.4"}, lb, "1.2.3.4"},
		{"all trusted: leftmost", "10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, lb, "10.3.3.3"},
		{"garbage falls back to the peer", "10.1.1.1:5000", []string{"not-an-ip"}, lb, "10.1.1.1"},
		{"no header", "10.1.1.1:5000", nil, lb, "10.1.1.1"},
		{"ipv6 peer", "[2001:db8::1]:443", nil, lb, "2001:db8::1"},
		{"unparsable remote", "pipe", nil, lb, Unknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := FromHTTP(r, c.trusted, "X-Forwarded-For"); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestFromGRPC(t *testing.T) {
	loop, _ := Parse(Loopback)
	in := func(peerAddr string, md ...string) context.Context {
		ctx := context.Background()
		if peerAddr != "" {
			a, _ := net.ResolveTCPAddr("tcp", peerAddr)
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: a})
		}
		if len(md) > 0 {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(md...))
		}
		return ctx
	}
	cases := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"trusted gateway reports its client", in("127.0.0.1:4000", MetadataKey, "198.51.100.7"), "198.51.100.7"},
		{"untrusted peer cannot choose its address", in("192.0.2.1:4000", MetadataKey, "198.51.100.7"), "192.0.2.1"},
		{"garbage report ignored", in("127.0.0.1:4000", MetadataKey, "x"), "127.0.0.1"},
		{"two reports ignored", in("127.0.0.1:4000", MetadataKey, "198.51.100.7", MetadataKey, "198.51.100.8"), "127.0.0.1"},
		{"no peer", in(""), Unknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := FromGRPC(c.ctx, loop); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	if _, ok := Parse([]string{"10.0.0.0/8", "::1", " 127.0.0.1 "}); !ok {
		t.Fatal("valid list refused")
	}
	if _, ok := Parse([]string{"10.0.0.0/33"}); ok {
		t.Fatal("bad CIDR accepted")
	}
	if _, ok := Parse([]string{"example.com"}); ok {
		t.Fatal("host name accepted")
	}
}

func TestBucket(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		unknownAddr:            unknownAddr,
	} {
		if got := Bucket(in); got != want {
			t.Errorf("Bucket(%q) = %q, want %q", in, got, want)
		}
	}
}

const unknownAddr = Unknown
