package auth

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/clientaddr"
)

// A one-service server whose methods need the scopes named in guardPolicy, guarded like the real ones.
var guardPolicy = Policy{Scopes: map[string]string{
	"/test.Guarded/Read":  ScopeTokenRead,
	"/test.Guarded/Write": ScopeAuditWrite,
	"/test.Guarded/Admin": ScopeTokenAdmin,
}}

type seen struct {
	mu        sync.Mutex
	addr      string
	principal string
}

func guardedDesc(s *seen) *grpc.ServiceDesc {
	d := &grpc.ServiceDesc{ServiceName: "test.Guarded", HandlerType: (*any)(nil)}
	for _, m := range []string{"Read", "Write", "Admin"} {
		full := "/test.Guarded/" + m
		d.Methods = append(d.Methods, grpc.MethodDesc{MethodName: m,
			Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					s.mu.Lock()
					s.addr = ClientAddr(ctx)
					if p := FromContext(ctx); p != nil {
						s.principal = p.ID
					}
					s.mu.Unlock()
					return &emptypb.Empty{}, nil
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, h)
			}})
	}
	return d
}

type recordingSink struct {
	mu      sync.Mutex
	denials []Denial
}

func (r *recordingSink) Denied(d Denial) {
	r.mu.Lock()
	r.denials = append(r.denials, d)
	r.mu.Unlock()
}
func (r *recordingSink) all() []Denial {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Denial(nil), r.denials...)
}

type guarded struct {
	addr string
	seen *seen
	sink *recordingSink
}

func startGuarded(t *testing.T, limits Limits, trusted []string, internal []string, keys ...APIKey) *guarded {
	t.Helper()
	return startGuardedWith(t, nil, limits, trusted, internal, keys...)
}

// startGuardedWith is startGuarded whose authenticator also takes JWTs from jwtv (nil: none).
func startGuardedWith(t *testing.T, jwtv *JWTVerifier, limits Limits, trusted []string, internal []string, keys ...APIKey) *guarded {
	t.Helper()
	g := &guarded{seen: &seen{}, sink: &recordingSink{}}
	set := keySet(t, keys...)
	authn := &Authenticator{APIKeys: set, JWT: jwtv}
	tr, ok := clientaddr.Parse(trusted)
	if !ok {
		t.Fatal("bad trusted list")
	}
	guard := NewGuard(authn, guardPolicy, NewLimiters(limits, internal...), tr, g.sink)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(guard.Unary))
	srv.RegisterService(guardedDesc(g.seen), struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	g.addr = lis.Addr().String()
	return g
}

// dialFrom connects from a chosen loopback address, so that one test can play several clients.
func dialFrom(t *testing.T, target, local string) *grpc.ClientConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func invokeAs(ctx context.Context, conn *grpc.ClientConn, method, key string, md ...string) error {
	if key != "" {
		md = append(md, "authorization", "Bearer "+key)
	}
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	return conn.Invoke(ctx, "/test.Guarded/"+method, &emptypb.Empty{}, &emptypb.Empty{})
}

func newKey(t *testing.T, id string, scopes ...string) (APIKey, string) {
	t.Helper()
	k, err := NewAPIKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return APIKey{ID: id, SHA256: HashAPIKey(k), Scopes: scopes}, k
}

// Item 5 of issue 7: 64 callers sharing one key on the hot path are not throttled at 100/s with the
// defaults, while administration with the same key still is.
func TestDefaultLimitsFitTheTraffic(t *testing.T) {
	entry, key := newKey(t, "fleet", ScopeTokenRead, ScopeTokenAdmin)
	g := startGuarded(t, DefaultLimits, clientaddr.Loopback, nil, entry)
	conn := dialFrom(t, g.addr, "127.0.0.1")
	run := func(method string, perCaller int) (ok, exhausted int, elapsed time.Duration) {
		var okN, exN atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perCaller {
					switch err := invokeAs(t.Context(), conn, method, key); status.Code(err) {
					case codes.OK:
						okN.Add(1)
					case codes.ResourceExhausted:
						exN.Add(1)
					default:
						t.Errorf("%s: %v", method, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return int(okN.Load()), int(exN.Load()), time.Since(start)
	}
	ok, exhausted, elapsed := run("Read", 40)
	rate := float64(ok+exhausted) / elapsed.Seconds()
	if rate <= 100 {
		t.Fatalf("precondition: the callers managed only %.0f calls/s, not above the old 100/s limit", rate)
	}
	if exhausted != 0 || ok != 64*40 {
		t.Fatalf("hot-path reads at %.0f/s: %d answered, %d throttled", rate, ok, exhausted)
	}
	ok, exhausted, elapsed = run("Admin", 5)
	allowed := DefaultLimits.Admin.Burst + int(DefaultLimits.Admin.PerSecond*elapsed.Seconds()) + 1
	if exhausted == 0 || ok > allowed {
		t.Fatalf("admin calls: %d answered (at most %d allowed), %d throttled", ok, allowed, exhausted)
	}
	t.Logf("reads: %d at %.0f/s unthrottled; admin: %d answered, %d throttled", 64*40, rate, ok, exhausted)
}

// Item 2: an address that keeps failing is refused (its forged keys no longer reach an Unauthenticated
// answer), other addresses are not affected, and every refusal of a genuine key is reported as known.
func TestFailingAddressIsLimitedBeforeAuthentication(t *testing.T) {
	reader, readerKey := newKey(t, "reader", ScopeTokenRead)
	limits := DefaultLimits
	limits.Failures = Rate{PerSecond: 1, Burst: 5}
	g := startGuarded(t, limits, nil, nil, reader)
	attacker := dialFrom(t, g.addr, "127.0.0.2")
	honest := dialFrom(t, g.addr, "127.0.0.1")
	codesSeen := map[codes.Code]int{}
	for range 50 {
		codesSeen[status.Code(invokeAs(t.Context(), attacker, "Read", "sgk_reader.forged-forged-forged-forged"))]++
	}
	if codesSeen[codes.Unauthenticated] < 5 || codesSeen[codes.Unauthenticated] > 7 || codesSeen[codes.ResourceExhausted] < 43 {
		t.Fatalf("50 forged calls from one address: %v; want the burst of 5 (plus refill) refused as such, the rest limited", codesSeen)
	}
	// The honest client at another address is neither limited nor refused.
	if err := invokeAs(t.Context(), honest, "Read", readerKey); err != nil {
		t.Fatalf("honest client: %v", err)
	}
	// It tries a scope it lacks: refused, reported as a known credential every time.
	for range 3 {
		if c := status.Code(invokeAs(t.Context(), honest, "Admin", readerKey)); c != codes.PermissionDenied {
			t.Fatalf("missing scope: %v", c)
		}
	}
	known, anonymous := 0, 0
	for _, d := range g.sink.all() {
		switch {
		case d.Known && d.Actor == "apikey:reader" && d.Reason == ReasonScope && d.Peer == "127.0.0.1":
			known++
		case d.Actor == "anonymous" && d.Peer == "127.0.0.2":
			anonymous++
		default:
			t.Errorf("unexpected denial %+v", d)
		}
	}
	if known != 3 || anonymous < 50 {
		t.Fatalf("denials: %d known (want 3), %d anonymous (want every refused call)", known, anonymous)
	}
}

// Item 10: refusals name the key of an expired or revoked credential and the client's address as the
// trusted gateway reports it; an untrusted peer cannot choose its address; handlers see the same address.
func TestDenialsNameKeyAndClientAddress(t *testing.T) {
	old, oldKey := newKey(t, "old", ScopeTokenRead)
	past := time.Now().Add(-time.Hour)
	old.ExpiresAt = &past
	gone, goneKey := newKey(t, "gone", ScopeTokenRead)
	gone.Revoked = true
	ok, okKey := newKey(t, "ok", ScopeTokenRead)
	g := startGuarded(t, DefaultLimits, []string{"127.0.0.1"}, nil, old, gone, ok)
	gateway := dialFrom(t, g.addr, "127.0.0.1")  // trusted proxy
	stranger := dialFrom(t, g.addr, "127.0.0.3") // not trusted
	via := []string{clientaddr.MetadataKey, "203.0.113.9"}
	for _, k := range []string{oldKey, goneKey} {
		if c := status.Code(invokeAs(t.Context(), gateway, "Read", k, via...)); c != codes.Unauthenticated {
			t.Fatalf("expired/revoked key: %v", c)
		}
	}
	if c := status.Code(invokeAs(t.Context(), stranger, "Read", "", via...)); c != codes.Unauthenticated {
		t.Fatalf("no key: %v", c)
	}
	ds := g.sink.all()
	if len(ds) != 3 {
		t.Fatalf("denials %+v", ds)
	}
	want := []Denial{
		{Actor: "apikey:old", Reason: ReasonExpired, Peer: "203.0.113.9", Known: true},
		{Actor: "apikey:gone", Reason: ReasonRevoked, Peer: "203.0.113.9", Known: true},
		{Actor: "anonymous", Reason: ReasonMissing, Peer: "127.0.0.3"},
	}
	for i, w := range want {
		d := ds[i]
		if d.Actor != w.Actor || d.Reason != w.Reason || d.Peer != w.Peer || d.Known != w.Known || d.Method != "/test.Guarded/Read" {
			t.Errorf("denial %d = %+v, want %+v", i, d, w)
		}
	}
	if err := invokeAs(t.Context(), gateway, "Read", okKey, via...); err != nil {
		t.Fatal(err)
	}
	g.seen.mu.Lock()
	defer g.seen.mu.Unlock()
	if g.seen.addr != "203.0.113.9" || g.seen.principal != "apikey:ok" {
		t.Fatalf("handler saw address %q principal %q", g.seen.addr, g.seen.principal)
	}
}

// Item 2: the key the services write to the audit log with has a budget of its own; callers exhausting
// theirs (or sharing the class limit) never spend it.
func TestInternalClientNeverSharesABudget(t *testing.T) {
	caller, callerKey := newKey(t, "caller", ScopeAuditWrite)
	internal, internalKey := newKey(t, "audit-writer", ScopeAuditWrite)
	limits := DefaultLimits
	limits.Write = Rate{PerSecond: 1, Burst: 2}
	g := startGuarded(t, limits, nil, []string{"apikey:audit-writer"}, caller, internal)
	conn := dialFrom(t, g.addr, "127.0.0.1")
	limited := 0
	for range 10 {
		if status.Code(invokeAs(t.Context(), conn, "Write", callerKey)) == codes.ResourceExhausted {
			limited++
		}
	}
	if limited < 7 {
		t.Fatalf("precondition: the caller was limited only %d times of 10 at 1/s", limited)
	}
	for i := range 200 {
		if err := invokeAs(t.Context(), conn, "Write", internalKey); err != nil {
			t.Fatalf("internal client call %d: %v", i, err)
		}
	}
}

func TestFailureBudgetIsPerIPv4AddressAndIPv6Slash64(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1":               "192.0.2.1",
		"2001:db8:1:2:aaaa::1":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9999": "2001:db8:1:2::/64",
		"unknown":                 "unknown",
	}
	for in, want := range cases {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
