// Package clientaddr finds the address of the client behind a request. It is the connection's peer
// unless that peer is a trusted proxy, in which case the proxy's report is believed: the gateway passes
// the address of its HTTP client to the services in the x-sergas-client-ip metadata, and a load
// balancer in front of the gateway passes its client's address in a header such as X-Forwarded-For.
// Reports from anyone else are ignored, so that a caller cannot choose the address it is recorded and
// rate-limited under. A trusted network is not enough for the services (see proof.go): the gateway's
// report must also carry a proof made with CLIENT_ADDR_SECRET.
package clientaddr

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/sergas/core/internal/config"
)

// MetadataKey is the gRPC metadata in which the gateway reports its HTTP client's address.
const MetadataKey = "x-sergas-client-ip"

// Unknown is the address of a request whose peer cannot be determined.
const Unknown = "unknown"

// Trusted is a set of proxy networks whose reports of their client's address are believed.
type Trusted struct {
	nets []netip.Prefix
	// key, when set (LoadProxies always sets it), is what a gRPC report's proof must be made with.
	key []byte
	// unprovenLoopback believes a trusted loopback peer's report without a proof: development without
	// CLIENT_ADDR_SECRET, where a gateway in another process on the same host has no shared key.
	unprovenLoopback bool
	warning          string
}

// Parse reads CIDRs or single addresses ("10.0.0.0/8", "::1", "127.0.0.1"). Its set believes gRPC
// reports from those networks without a proof: for HTTP proxies (FromHTTP, which has no proofs) and
// tests; the services' side comes from LoadProxies, which requires one.
func Parse(list []string) (Trusted, bool) {
	var t Trusted
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			t.nets = append(t.nets, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Trusted{}, false
		}
		a = a.Unmap()
		t.nets = append(t.nets, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, true
}

// Load reads a list of trusted proxies from env variable name, with def when unset.
func Load(env *config.Env, name string, def []string) Trusted {
	t, ok := Parse(env.List(name, def))
	if !ok {
		env.Fail(name, "must be a comma-separated list of IP addresses or CIDR networks")
	}
	return t
}

// LoadProxies reads the services' side: GRPC_TRUSTED_PROXIES, the peers (the gateway) whose
// x-sergas-client-ip report is believed when its proof verifies under CLIENT_ADDR_SECRET, loopback by
// default. Without the secret, development believes a loopback peer's report unproven (`make run`, a
// gateway started on its own beside the services), and production believes only a gateway in the same
// process (the all-in-one binary; see processSecret) and says so in Warning.
func LoadProxies(env *config.Env, development bool) Trusted {
	t := Load(env, "GRPC_TRUSTED_PROXIES", Loopback)
	key, configured := LoadSecret(env)
	t.key = key
	if !configured {
		if development {
			t.unprovenLoopback = true
		} else {
			t.warning = noSecretWarning
		}
	}
	return t
}

// Loopback trusts 127.0.0.0/8 and ::1: the default for services, whose gateway runs beside them under
// `make run`.
var Loopback = []string{"127.0.0.0/8", "::1/128"}

// Contains reports whether ip is in a trusted network.
func (t Trusted) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, n := range t.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// FromHTTP is the client address of an HTTP request. When the connection comes from a trusted proxy,
// header (for example X-Forwarded-For, a comma-separated list appended to by each proxy) is read from
// the right, skipping trusted proxies, and the first other valid address is the client.
func FromHTTP(r *http.Request, t Trusted, header string) string {
	ip, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		return Unknown
	}
	if header == "" || !t.Contains(ip) {
		return ip.String()
	}
	values := r.Header.Values(header)
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return ip.String() // a garbled report: fall back to what the connection says
			}
			a = a.Unmap()
			if !t.Contains(a) {
				return a.String()
			}
			ip = a
		}
	}
	return ip.String()
}

// FromGRPC is the client address of an RPC: the peer's, or the address in x-sergas-client-ip when the
// peer is a trusted proxy (the gateway), reports a valid one and proves it (see LoadProxies).
func FromGRPC(ctx context.Context, t Trusted) string {
	return fromGRPC(ctx, t, time.Now)
}

// fromGRPC reads the clock (now) only when there is a proof to check: most calls come straight from
// their client, and the clock is not free.
func fromGRPC(ctx context.Context, t Trusted, now func() time.Time) string {
	v := metadata.ValueFromIncomingContext(ctx, MetadataKey)
	if len(v) != 1 {
		return reported(ctx, t, "", "", now)
	}
	proof := "" // none, or several: no proof (verify refuses an empty one)
	if p := metadata.ValueFromIncomingContext(ctx, ProofKey); len(p) == 1 {
		proof = p[0]
	}
	return reported(ctx, t, v[0], proof, now)
}

// Reported is the address of one item of a batch that a proxy hands over (webhook IngestBatch): addr,
// as proven by proof, when the RPC's peer is a trusted proxy and the proof holds, exactly as FromGRPC
// believes x-sergas-client-ip; otherwise the peer's own address.
func Reported(ctx context.Context, t Trusted, addr, proof string) string {
	return reported(ctx, t, addr, proof, time.Now)
}

// reported believes addr (with its proof, when the proxy must give one) from a trusted peer only.
func reported(ctx context.Context, t Trusted, addr, proof string, now func() time.Time) string {
	ip, ok := peerAddr(ctx)
	if !ok {
		return Unknown
	}
	if addr == "" || !t.Contains(ip) {
		return ip.String()
	}
	a, err := netip.ParseAddr(strings.TrimSpace(addr))
	if err != nil {
		return ip.String()
	}
	if t.key == nil || (t.unprovenLoopback && ip.IsLoopback()) {
		return a.Unmap().String()
	}
	// The proof is checked against the report exactly as sent, so that it covers every byte believed.
	if proof != "" && verify(t.key, addr, proof, now()) {
		return a.Unmap().String()
	}
	return ip.String()
}

func peerAddr(ctx context.Context) (netip.Addr, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return netip.Addr{}, false
	}
	// A TCP peer (every gRPC connection but a test's) is read from its IP as it is, instead of being
	// formatted as "host:port" and parsed back on every call; the result is the same.
	if a, ok := p.Addr.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return netip.Addr{}, false
		}
		ip = ip.Unmap()
		if a.Zone != "" {
			if ip.Is4() {
				return netip.Addr{}, false // "1.2.3.4%zone" does not parse
			}
			ip = ip.WithZone(a.Zone)
		}
		return ip, true
	}
	return parseHostPort(p.Addr.String())
}

func parseHostPort(s string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Bucket is the key under which an address is rate-limited and summed up: the address itself for IPv4,
// its /64 for IPv6, where one client is usually given a whole /64 and could otherwise rotate through it
// for a fresh budget per request (and fill a limiter's map).
func Bucket(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	if a.Is4() {
		return addr // dotted decimal parses only in its canonical form: addr is what String would make
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
