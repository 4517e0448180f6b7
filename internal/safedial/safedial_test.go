package safedial

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for in, want := range map[string]string{
		"8.8.8.8": "", "1.1.1.1": "", "2606:4700::1111": "", "172.32.0.1": "", "100.128.0.1": "", "11.0.0.1": "",
		"127.0.0.1": ClassLoopback, "127.255.1.2": ClassLoopback, "::1": ClassLoopback,
		"10.1.2.3": ClassPrivate, "172.16.0.1": ClassPrivate, "172.31.255.255": ClassPrivate, "192.168.1.1": ClassPrivate,
		"fd12:3456::1": ClassPrivate, "fc00::1": ClassPrivate,
		"169.254.1.1": ClassLinkLocal, "fe80::1": ClassLinkLocal, "fe80::1%eth0": ClassLinkLocal,
		"0.0.0.0": ClassUnspecified, "0.1.2.3": ClassUnspecified, "::": ClassUnspecified,
		"224.0.0.1": ClassMulticast, "239.1.1.1": ClassMulticast, "ff02::1": ClassMulticast,
		"100.64.0.1": ClassCGNAT, "100.127.255.254": ClassCGNAT,
		"255.255.255.255": ClassBroadcast, "240.0.0.1": ClassReserved,
		"169.254.169.254": ClassMetadata, "100.100.100.200": ClassMetadata, "fd00:ec2::254": ClassMetadata,
		// IPv4-mapped and NAT64 forms are judged by the IPv4 address inside.
		"::ffff:127.0.0.1": ClassLoopback, "::ffff:10.0.0.1": ClassPrivate, "::ffff:169.254.169.254": ClassMetadata,
		"::ffff:8.8.8.8": "", "64:ff9b::7f00:1": ClassLoopback, "64:ff9b::808:808": "", "64:ff9b:1::a00:1": ClassPrivate,
		"::127.0.0.1": ClassReserved,
		// Local-use NAT64 (64:ff9b:1::/48) at each RFC 6052 prefix length: /48 (bytes 6-7, 9-10), /56,
		// /64, /96; a public address behind a /96 gateway with zero middle bits stays public.
		"64:ff9b:1:7f00:0:100::": ClassLoopback, "64:ff9b:1:a00:0:100::": ClassPrivate, "64:ff9b:1:a:0:100::": ClassPrivate, "64:ff9b:1:0:a9:fea9:fe00::": ClassMetadata,
		"64:ff9b:1::808:808": "", "64:ff9b:1:808:8:800::": "", "64:ff9b:1::": ClassUnspecified,
		// SIIT IPv4-translated (::ffff:0:a.b.c.d), 6to4 (2002:aabb:ccdd::) and Teredo (client address
		// inverted in the last 32 bits) carry an IPv4 address too.
		"::ffff:0:7f00:1": ClassLoopback, "::ffff:0:808:808": "",
		"2002:7f00:1::1": ClassLoopback, "2002:a9fe:a9fe::": ClassMetadata, "2002:c0a8:101:1::1": ClassPrivate, "2002:808:808::1": "",
		"2001:0:4136:e378:8000:63bf:80ff:fffe": ClassLoopback, "2001:0:4136:e378:8000:63bf:f5ff:fffe": ClassPrivate,
		"2001:0:4136:e378:8000:63bf:f7f7:f7f7": "",
	} {
		if got := Classify(netip.MustParseAddr(in)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", in, got, want)
		}
	}
	if got := Classify(netip.Addr{}); got != ClassInvalid {
		t.Errorf("Classify(zero) = %q", got)
	}
}

func TestCheckErrorNamesOnlyTheClass(t *testing.T) {
	err := Check("10.20.30.40:8443")
	var re *RefusedError
	if !errors.As(err, &re) || re.Class != ClassPrivate {
		t.Fatalf("Check = %v, want a private refusal", err)
	}
	if strings.Contains(err.Error(), "10.20") || strings.Contains(err.Error(), "8443") {
		t.Errorf("error %q repeats the address", err)
	}
	if err := Check("[2606:4700::1111]:443"); err != nil {
		t.Errorf("public address refused: %v", err)
	}
	if err := Check("not-an-address"); !errors.As(err, &re) || re.Class != ClassInvalid {
		t.Errorf("Check(garbage) = %v", err)
	}
}

// TestDialerRefusesBeforeConnecting dials a real listener on loopback by name: the dialer refuses after
// resolving "localhost", and the listener never sees a connection; with private networks allowed the
// same dial connects.
func TestDialerRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan string, 10) // the remote address of each connection, in accept order
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, host := range []string{"localhost", "127.0.0.1", "::ffff:127.0.0.1"} {
		_, err := Dialer(time.Second, false).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		var re *RefusedError
		if !errors.As(err, &re) || re.Class != ClassLoopback {
			t.Fatalf("dial %s: %v, want a loopback refusal", host, err)
		}
	}
	c, err := Dialer(time.Second, true).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	defer c.Close()
	// The refused dials came first: had any connected, the first connection accepted would be its.
	select {
	case got := <-accepted:
		if got != c.LocalAddr().String() {
			t.Fatalf("the listener accepted %s before the allowed dial (%s): a refused dial connected", got, c.LocalAddr())
		}
	case <-ctx.Done():
		t.Fatal("the allowed dial never reached the listener")
	}
}
