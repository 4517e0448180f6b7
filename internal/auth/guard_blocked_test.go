package auth

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The reviewer's P1: an attacker that spends the failure budget of an address shared with honest
// clients (the gateway's HTTP clients and the services' own audit writer all come from 127.0.0.1 in
// `make run`) must not lock them out. On the blocked address a valid API key and the internal key still
// work; calls without credentials, with forged keys or with a JWT (whose signature is not even checked)
// are refused as address-limited.
func TestBlockedAddressStillAdmitsValidKeys(t *testing.T) {
	reader, readerKey := newKey(t, "reader", ScopeTokenRead)
	internal, internalKey := newKey(t, "audit-writer", ScopeAuditWrite)
	f := newJWTFixture(t)
	keys, err := ParseJWKS(f.jwks)
	if err != nil {
		t.Fatal(err)
	}
	var jwtChecks atomic.Int64
	jwtv := &JWTVerifier{Keys: func() *JWTKeys { jwtChecks.Add(1); return keys }, Issuer: "https://idp.example", Audience: "sergas"}
	limits := DefaultLimits
	limits.Failures = Rate{PerSecond: 0.01, Burst: 5} // no refill within the test
	g := startGuardedWith(t, jwtv, limits, nil, []string{"apikey:audit-writer"}, reader, internal)
	shared := dialFrom(t, g.addr, "127.0.0.1") // attacker, honest client and internal writer alike

	blocked := false
	for i := 0; i < 50 && !blocked; i++ {
		blocked = status.Code(invokeAs(t.Context(), shared, "Read", "sgk_reader.forged-forged-forged-forged")) == codes.ResourceExhausted
	}
	if !blocked {
		t.Fatal("precondition: 50 forged keys did not spend the address's failure budget")
	}
	for i := range 20 {
		if err := invokeAs(t.Context(), shared, "Read", readerKey); err != nil {
			t.Fatalf("valid key on the blocked address, call %d: %v", i, err)
		}
		if err := invokeAs(t.Context(), shared, "Write", internalKey); err != nil {
			t.Fatalf("internal writer on the blocked address, call %d: %v", i, err)
		}
	}
	good := f.sign(t, jwt.SigningMethodHS256, "hs", jwt.MapClaims{"iss": "https://idp.example", "aud": "sergas", "sub": "a",
		"exp": time.Now().Add(time.Minute).Unix(), "scope": ScopeTokenRead})
	for name, key := range map[string]string{"no credentials": "", "forged key": "sgk_reader.forged-forged-forged-forged", "JWT": good} {
		if c := status.Code(invokeAs(t.Context(), shared, "Read", key)); c != codes.ResourceExhausted {
			t.Errorf("%s on the blocked address: %v, want ResourceExhausted", name, c)
		}
	}
	if n := jwtChecks.Load(); n != 0 {
		t.Errorf("a JWT from the blocked address was verified (%d key lookups)", n)
	}
	// The JWT itself is fine: from an address with budget left it is accepted.
	other := dialFrom(t, g.addr, "127.0.0.5")
	if err := invokeAs(t.Context(), other, "Read", good); err != nil {
		t.Fatalf("precondition: the JWT is refused elsewhere too: %v", err)
	}
	for _, d := range g.sink.all() {
		if d.Reason == ReasonAddressLimited && d.Known {
			t.Errorf("an address-limited refusal was reported as a known credential: %+v", d)
		}
	}
}
