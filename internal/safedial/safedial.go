// Package safedial refuses outbound connections to addresses a caller-supplied URL must not reach:
// loopback, private and link-local networks, the cloud metadata address and other non-public ranges
// (SSRF). The check runs in the dialer's Control hook, on the address actually being connected to after
// DNS resolution, for every connection: a name that resolves to a public address once and to a private
// one later (DNS rebinding) is refused the second time too.
package safedial

import (
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Address classes a refusal names. They are the error text's only detail: neither the address nor the
// host name is repeated, so an error shown to a subscription's owner does not map the internal network.
const (
	ClassLoopback    = "loopback"
	ClassPrivate     = "private"
	ClassLinkLocal   = "link-local"
	ClassUnspecified = "unspecified"
	ClassMulticast   = "multicast"
	ClassCGNAT       = "shared (CGNAT)"
	ClassBroadcast   = "broadcast"
	ClassMetadata    = "cloud metadata"
	ClassReserved    = "reserved"
	ClassInvalid     = "not an IP address"
)

// RefusedError is a connection refused because of its address's class.
type RefusedError struct{ Class string }

func (e *RefusedError) Error() string {
	return "connection to a " + e.Class + " address refused (the endpoint does not allow private networks)"
}

// metadata holds the cloud instance metadata addresses that lie outside the ranges below (AWS, GCP and
// Azure use 169.254.169.254, which is link-local anyway, but it is named for a clearer error; Alibaba's
// 100.100.100.200 is inside CGNAT; AWS's IPv6 fd00:ec2::254 is inside the ULA range).
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("fd00:ec2::254"),
}

// ranges are the non-public networks, in the order they are matched (the first match names the class).
var ranges = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), ClassUnspecified}, // "this network"; 0.0.0.0 reaches the local host
	{netip.MustParsePrefix("127.0.0.0/8"), ClassLoopback},
	{netip.MustParsePrefix("10.0.0.0/8"), ClassPrivate},
	{netip.MustParsePrefix("172.16.0.0/12"), ClassPrivate},
	{netip.MustParsePrefix("192.168.0.0/16"), ClassPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), ClassCGNAT},
	{netip.MustParsePrefix("169.254.0.0/16"), ClassLinkLocal},
	{netip.MustParsePrefix("192.0.0.0/24"), ClassReserved},  // IETF protocol assignments
	{netip.MustParsePrefix("198.18.0.0/15"), ClassReserved}, // benchmarking, used inside some clouds
	{netip.MustParsePrefix("224.0.0.0/4"), ClassMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), ClassBroadcast},
	{netip.MustParsePrefix("240.0.0.0/4"), ClassReserved},
	{netip.MustParsePrefix("::/128"), ClassUnspecified},
	{netip.MustParsePrefix("::1/128"), ClassLoopback},
	{netip.MustParsePrefix("fc00::/7"), ClassPrivate}, // unique local addresses
	{netip.MustParsePrefix("fe80::/10"), ClassLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), ClassPrivate}, // deprecated site-local, still routed by some stacks
	{netip.MustParsePrefix("ff00::/8"), ClassMulticast},
	{netip.MustParsePrefix("::/96"), ClassReserved},    // deprecated IPv4-compatible addresses
	{netip.MustParsePrefix("100::/64"), ClassReserved}, // discard-only
	{netip.MustParsePrefix("2001:db8::/32"), ClassReserved},
}

// Prefixes of IPv6 addresses that carry an IPv4 address a gateway or relay connects to (RFC 6052 NAT64,
// RFC 7915 SIIT, RFC 3056 6to4, RFC 4380 Teredo): such an address is judged by the IPv4 address it
// carries, so that a private or loopback target cannot be reached through its IPv6 translation.
var (
	// nat64WellKnown embeds the IPv4 address in its last 32 bits.
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	// nat64LocalUse is RFC 8215's local-use prefix: an operator takes a NAT64 prefix of length 48, 56, 64
	// or 96 inside it, and RFC 6052 puts the IPv4 address at a different place for each (skipping bits
	// 64-71). Which length a network uses is not known here, so every placement is judged.
	nat64LocalUse = netip.MustParsePrefix("64:ff9b:1::/48")
	// siit is the IPv4-translated form ::ffff:0:a.b.c.d (RFC 2765), in its last 32 bits.
	siit = netip.MustParsePrefix("::ffff:0:0:0/96")
	// sixToFour carries the IPv4 address of the site's 6to4 router in bits 16-47.
	sixToFour = netip.MustParsePrefix("2002::/16")
	// teredo carries the client's IPv4 address, inverted, in its last 32 bits.
	teredo = netip.MustParsePrefix("2001::/32")
)

// nat64Placements are the byte offsets of the four IPv4 bytes for each NAT64 prefix length (RFC 6052
// section 2.2): /48, /56, /64, /96.
var nat64Placements = [][4]int{{6, 7, 9, 10}, {7, 9, 10, 11}, {9, 10, 11, 12}, {12, 13, 14, 15}}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address a carries (none for other addresses).
func embeddedIPv4(a netip.Addr) []netip.Addr {
	b := a.As16()
	at := func(i [4]int) netip.Addr { return netip.AddrFrom4([4]byte{b[i[0]], b[i[1]], b[i[2]], b[i[3]]}) }
	switch {
	case nat64WellKnown.Contains(a), siit.Contains(a):
		return []netip.Addr{at(nat64Placements[3])}
	case nat64LocalUse.Contains(a):
		// Every placement but those that read "this network" (0/8): the bits a placement of another
		// prefix length reads are mostly zero (a /96 gateway's addresses read 0.0.0.x at /48), and
		// judging them would refuse every public address behind such a gateway. All zero is judged as is.
		var out []netip.Addr
		for _, p := range nat64Placements {
			if v4 := at(p); v4.As4()[0] != 0 {
				out = append(out, v4)
			}
		}
		if len(out) == 0 {
			out = append(out, at(nat64Placements[3]))
		}
		return out
	case sixToFour.Contains(a):
		return []netip.Addr{at([4]int{2, 3, 4, 5})}
	case teredo.Contains(a):
		return []netip.Addr{netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})}
	}
	return nil
}

// Classify returns the class of a non-public address, or "" for a public one. IPv4-mapped IPv6
// (::ffff:a.b.c.d), NAT64, SIIT, 6to4 and Teredo addresses are judged by the IPv4 address they carry; a
// zone is ignored.
func Classify(a netip.Addr) string {
	if !a.IsValid() {
		return ClassInvalid
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		for _, v4 := range embeddedIPv4(a) {
			if c := Classify(v4); c != "" {
				return c
			}
		}
	}
	for _, m := range metadata {
		if a == m {
			return ClassMetadata
		}
	}
	for _, r := range ranges {
		if r.prefix.Contains(a) {
			return r.class
		}
	}
	return ""
}

// Check returns a *RefusedError when address ("ip:port", as a dialer's Control receives it) is not
// public.
func Check(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Class: ClassInvalid}
	}
	if c := Classify(ap.Addr()); c != "" {
		return &RefusedError{Class: c}
	}
	return nil
}

// Control is a net.Dialer Control function that refuses connections to non-public addresses. It runs
// after resolution, once per address tried, before the connection is made.
func Control(_, address string, _ syscall.RawConn) error { return Check(address) }

// Dialer returns a dialer that connects only to public addresses unless allowPrivate is set.
func Dialer(timeout time.Duration, allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = Control
	}
	return d
}
