package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	"github.com/sergas/core/internal/testutil"
)

func ctxWith(header ...string) context.Context {
	md := metadata.MD{}
	for _, h := range header {
		md.Append("authorization", h)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func keySet(t *testing.T, entries ...APIKey) func() APIKeySet {
	t.Helper()
	doc, _ := json.Marshal(map[string]any{"keys": entries})
	set, err := ParseAPIKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	return func() APIKeySet { return set }
}

func TestAPIKeys(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Minute), now.Add(time.Hour)
	good, _ := NewAPIKey("good")
	expired, _ := NewAPIKey("old")
	revoked, _ := NewAPIKey("gone")
	later, _ := NewAPIKey("later")
	a := &Authenticator{APIKeys: keySet(t,
		APIKey{ID: "good", SHA256: HashAPIKey(good), Scopes: []string{ScopeTokenRead}},
		APIKey{ID: "old", SHA256: HashAPIKey(expired), Scopes: []string{ScopeTokenRead}, ExpiresAt: &past},
		APIKey{ID: "gone", SHA256: HashAPIKey(revoked), Scopes: []string{ScopeTokenRead}, Revoked: true},
		APIKey{ID: "later", SHA256: HashAPIKey(later), Scopes: []string{ScopeAuditRead}, ExpiresAt: &future},
	)}
	stranger, _ := NewAPIKey("good") // right id, wrong secret
	cases := []struct {
		name   string
		ctx    context.Context
		reason Reason
		id     string
	}{
		{"valid", ctxWith("Bearer " + good), "", "apikey:good"},
		{"scheme is case-insensitive", ctxWith("bearer " + good), "", "apikey:good"},
		{"valid until later", ctxWith("Bearer " + later), "", "apikey:later"},
		{"none", ctxWith(), ReasonMissing, ""},
		{"two headers", ctxWith("Bearer "+good, "Bearer "+good), ReasonMalformed, ""},
		{"basic auth", ctxWith("Basic dXNlcjpwYXNz"), ReasonMalformed, ""},
		{"no token", ctxWith("Bearer "), ReasonMalformed, ""},
		{"garbage", ctxWith("Bearer hello"), ReasonMalformed, ""},
		{"bad key shape", ctxWith("Bearer sgk_UPPER.secretsecretsecretsecret"), ReasonMalformed, ""},
		{"wrong secret", ctxWith("Bearer " + stranger), ReasonInvalid, ""},
		{"unknown id", ctxWith("Bearer sgk_nobody.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), ReasonInvalid, ""},
		{"expired", ctxWith("Bearer " + expired), ReasonExpired, ""},
		{"revoked", ctxWith("Bearer " + revoked), ReasonRevoked, ""},
		{"jwt without jwt config", ctxWith("Bearer a.b.c"), ReasonInvalid, ""},
	}
	for _, c := range cases {
		p, r := a.Authenticate(c.ctx)
		if r != c.reason || (p != nil) != (c.reason == "") || (p != nil && p.ID != c.id) {
			t.Errorf("%s: principal %+v reason %q, want %q", c.name, p, r, c.reason)
		}
	}
}

func TestParseAPIKeysRejectsBadEntries(t *testing.T) {
	h := strings.Repeat("a", 64)
	for name, doc := range map[string]string{
		"unknown scope": `{"keys":[{"id":"x","sha256":"` + h + `","scopes":["token:write"]}]}`,
		"no scopes":     `{"keys":[{"id":"x","sha256":"` + h + `","scopes":[]}]}`,
		"short hash":    `{"keys":[{"id":"x","sha256":"abc","scopes":["token:read"]}]}`,
		"bad id":        `{"keys":[{"id":"X Y","sha256":"` + h + `","scopes":["token:read"]}]}`,
		"duplicate":     `{"keys":[{"id":"x","sha256":"` + h + `","scopes":["token:read"]},{"id":"x","sha256":"` + h + `","scopes":["token:read"]}]}`,
		"unknown field": `{"keys":[{"id":"x","sha256":"` + h + `","scopes":["token:read"],"key":"plaintext"}]}`,
		"not json":      `keys: []`,
	} {
		if _, err := ParseAPIKeys([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

type jwtFixture struct {
	hsSecret []byte
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	jwks     []byte
}

func newJWTFixture(t *testing.T) *jwtFixture {
	t.Helper()
	f := &jwtFixture{hsSecret: make([]byte, 32)}
	_, _ = rand.Read(f.hsSecret)
	var err error
	if f.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	f.jwks, _ = json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "oct", "kid": "hs", "k": b64u(f.hsSecret)},
		{"kty": "RSA", "kid": "rs", "alg": "RS256", "n": b64u(f.rsa.N.Bytes()), "e": b64u(big.NewInt(int64(f.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "es", "crv": "P-256", "x": b64u(f.ec.X.FillBytes(make([]byte, 32))), "y": b64u(f.ec.Y.FillBytes(make([]byte, 32)))},
	}})
	return f
}

func (f *jwtFixture) sign(t *testing.T, method jwt.SigningMethod, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	var key any
	switch method.Alg() {
	case "HS256":
		key = f.hsSecret
	case "RS256":
		key = f.rsa
	case "ES256":
		key = f.ec
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	f := newJWTFixture(t)
	keys, err := ParseJWKS(f.jwks)
	if err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{JWT: &JWTVerifier{Keys: func() *JWTKeys { return keys }, Issuer: "https://idp.example", Audience: "sergas", Leeway: 5 * time.Second}}
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "https://idp.example", "aud": "sergas", "sub": "agent-7", "exp": now.Add(time.Minute).Unix(),
			"iat": now.Unix(), "scope": "token:read audit:write"}
		if mod != nil {
			mod(c)
		}
		return c
	}
	cases := []struct {
		name   string
		token  string
		reason Reason
	}{
		{"HS256", f.sign(t, jwt.SigningMethodHS256, "hs", claims(nil)), ""},
		{"RS256", f.sign(t, jwt.SigningMethodRS256, "rs", claims(nil)), ""},
		{"ES256", f.sign(t, jwt.SigningMethodES256, "es", claims(nil)), ""},
		{"expired", f.sign(t, jwt.SigningMethodHS256, "hs", claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), ReasonExpired},
		{"no expiry", f.sign(t, jwt.SigningMethodHS256, "hs", claims(func(c jwt.MapClaims) { delete(c, "exp") })), ReasonInvalid},
		{"wrong audience", f.sign(t, jwt.SigningMethodHS256, "hs", claims(func(c jwt.MapClaims) { c["aud"] = "other" })), ReasonInvalid},
		// The reviewer's P3: expired and for another audience (or issuer) is not a credential of ours.
		{"expired, wrong audience", f.sign(t, jwt.SigningMethodHS256, "hs", claims(func(c jwt.MapClaims) {
			c["exp"], c["aud"] = now.Add(-time.Minute).Unix(), "other"
		})), ReasonInvalid},
		{"expired, wrong issuer", f.sign(t, jwt.SigningMethodHS256, "hs", claims(func(c jwt.MapClaims) {
			c["exp"], c["iss"] = now.Add(-time.Minute).Unix(), "https://evil"
		})), ReasonInvalid},
		{"wrong issuer", f.sign(t, jwt.SigningMethodHS256, "hs", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil" })), ReasonInvalid},
		{"no subject", f.sign(t, jwt.SigningMethodHS256, "hs", claims(func(c jwt.MapClaims) { delete(c, "sub") })), ReasonInvalid},
		{"unknown kid", f.sign(t, jwt.SigningMethodHS256, "nope", claims(nil)), ReasonInvalid},
		{"alg/kid mismatch", f.sign(t, jwt.SigningMethodHS256, "rs", claims(nil)), ReasonInvalid},
		{"alg none", func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(), ReasonInvalid},
		{"tampered", func() string {
			s := f.sign(t, jwt.SigningMethodRS256, "rs", claims(nil))
			parts := strings.Split(s, ".")
			body, _ := json.Marshal(claims(func(c jwt.MapClaims) { c["scope"] = "token:admin" }))
			return parts[0] + "." + b64u(body) + "." + parts[2]
		}(), ReasonInvalid},
		{"malformed", "not.a.jwt", ReasonMalformed},
	}
	for _, c := range cases {
		p, r := a.Authenticate(ctxWith("Bearer " + c.token))
		if r != c.reason {
			t.Errorf("%s: reason %q, want %q", c.name, r, c.reason)
			continue
		}
		if c.reason == "" && (p.ID != "jwt:https://idp.example#agent-7" || !p.Has(ScopeTokenRead) || !p.Has(ScopeAuditWrite) || p.Has(ScopeTokenAdmin)) {
			t.Errorf("%s: principal %+v", c.name, p)
		}
	}
}

func TestParseJWKSRejectsWeakOrUnknownKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, doc := range map[string]any{
		"short secret": map[string]any{"keys": []map[string]string{{"kty": "oct", "kid": "a", "k": b64u([]byte("short"))}}},
		"small rsa":    map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "a", "n": b64u(small.N.Bytes()), "e": "AQAB"}}},
		"okp":          map[string]any{"keys": []map[string]string{{"kty": "OKP", "kid": "a"}}},
		"alg mismatch": map[string]any{"keys": []map[string]string{{"kty": "oct", "kid": "a", "alg": "RS256", "k": b64u(make([]byte, 32))}}},
		"empty":        map[string]any{"keys": []map[string]string{}},
	} {
		raw, _ := json.Marshal(doc)
		if _, err := ParseJWKS(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzBearer(f *testing.F) {
	good, _ := NewAPIKey("good")
	for _, s := range []string{"Bearer " + good, "Bearer a.b.c", "bearer sgk_x.y", "Basic x", "", "Bearer sgk_", "Bearer ....", "Bearer eyJhbGciOiJub25lIn0.e30."} {
		f.Add(s)
	}
	keys := &JWTKeys{byKID: map[string]jwtKey{"hs": {alg: "HS256", key: make([]byte, 32)}}, algs: []string{"HS256"}}
	a := &Authenticator{
		APIKeys: func() APIKeySet {
			return APIKeySet{"good": {ID: "good", SHA256: HashAPIKey(good), Scopes: []string{ScopeTokenRead}}}
		},
		JWT: &JWTVerifier{Keys: func() *JWTKeys { return keys }, Issuer: "i", Audience: "a"},
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, r := a.Authenticate(ctxWith(header))
		if p != nil && !strings.Contains(header, good) {
			t.Fatalf("accepted %q", header)
		}
		if p == nil && r == "" {
			t.Fatalf("no principal and no reason for %q", header)
		}
		if p != nil && p.ID != "apikey:good" {
			t.Fatalf("%q authenticated as %s", header, p.ID)
		}
	})
}

func FuzzParseAPIKeys(f *testing.F) {
	f.Add([]byte(`{"keys":[{"id":"x","sha256":"` + strings.Repeat("a", 64) + `","scopes":["token:read"]}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		set, err := ParseAPIKeys(raw)
		if err != nil {
			return
		}
		for id, k := range set {
			if id != k.ID || len(k.SHA256) != 64 || len(k.Scopes) == 0 {
				t.Fatalf("accepted a bad entry %+v", k)
			}
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"a","k":"` + b64u(make([]byte, 32)) + `"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) { _, _ = ParseJWKS(raw) })
}

// Revoking a key in the watched file takes effect even when a static key of the same id exists.
func TestFileEntryWinsOverStaticKey(t *testing.T) {
	key, _ := NewAPIKey("ops")
	entry := func(revoked bool) string {
		b, _ := json.Marshal(map[string]any{"keys": []APIKey{{ID: "ops", SHA256: HashAPIKey(key), Scopes: []string{ScopeTokenRead}, Revoked: revoked}}})
		return string(b)
	}
	path := t.TempDir() + "/keys.json"
	if err := os.WriteFile(path, []byte(entry(false)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Check the file on every call, so that the test waits for the reload it causes and not for a clock.
	defer func(d time.Duration) { keyFileInterval = d }(keyFileInterval)
	keyFileInterval = 0
	sec, err := Config{APIKeys: entry(false), APIKeysFile: path}.Build(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, r := sec.Authenticator.Authenticate(ctxWith("Bearer " + key)); r != "" {
		t.Fatalf("precondition: valid key refused: %s", r)
	}
	// The new content differs in size too, so that the change shows even within one mtime tick.
	if err := os.WriteFile(path, []byte(entry(true)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, r := sec.Authenticator.Authenticate(ctxWith("Bearer " + key)); r != ReasonRevoked {
		t.Fatalf("revoked in the file, still %q", r)
	}
}

// With the production interval, a change is picked up within it: the watcher is polled on use, so the
// test waits on the observable change (the key refused) with a deadline.
func TestKeyFileChangeSeenWithinInterval(t *testing.T) {
	key, _ := NewAPIKey("ops")
	entry := func(revoked bool) string {
		b, _ := json.Marshal(map[string]any{"keys": []APIKey{{ID: "ops", SHA256: HashAPIKey(key), Scopes: []string{ScopeTokenRead}, Revoked: revoked}}})
		return string(b)
	}
	path := t.TempDir() + "/keys.json"
	if err := os.WriteFile(path, []byte(entry(false)), 0o600); err != nil {
		t.Fatal(err)
	}
	sec, err := Config{APIKeysFile: path}.Build(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, r := sec.Authenticator.Authenticate(ctxWith("Bearer " + key)); r != "" {
		t.Fatalf("precondition: valid key refused: %s", r)
	}
	if err := os.WriteFile(path, []byte(entry(true)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waited := testutil.Eventually(t, 5*time.Second, "the revocation to be seen", func() bool {
		_, r := sec.Authenticator.Authenticate(ctxWith("Bearer " + key))
		return r == ReasonRevoked
	})
	if waited > keyFileInterval+time.Second {
		t.Fatalf("revocation took %v, more than the check interval %v allows", waited, keyFileInterval)
	}
}
