package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"
)

// The hand-written id check accepts exactly what the documented pattern accepts.
func TestKeyIDCheckMatchesThePattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	cases := []string{"", "a", "-", "-a", "a-", "bench", "audit-writer", "Bench", "a_b", "a.b", "a b", "a\n", "é",
		"abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz0123456", "0", "9-9", "a\x00"}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "az09-_A.\n\x00é"
	for range 20000 {
		b := make([]byte, r.IntN(36))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		if got, want := validKeyID(c), pattern.MatchString(c); got != want {
			t.Fatalf("validKeyID(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}

// A stored hash decodes as hex.DecodeString decodes it, in either case; anything else fails, and a key
// whose stored hash does not decode is refused.
func TestStoredHashDecoding(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	for _, h := range []string{hex.EncodeToString(sum[:]), "ABCDEF" + hex.EncodeToString(sum[3:])} {
		want, _ := hex.DecodeString(h)
		var got [sha256.Size]byte
		if !decodeHash(&got, h) || string(got[:]) != string(want) {
			t.Fatalf("decodeHash(%q) = %x, want %x", h, got, want)
		}
	}
	for _, h := range []string{"", "00", hex.EncodeToString(sum[:]) + "00", "g" + hex.EncodeToString(sum[:])[1:]} {
		var got [sha256.Size]byte
		if decodeHash(&got, h) {
			t.Fatalf("decodeHash(%q) accepted", h)
		}
	}
	key, err := NewAPIKey("k")
	if err != nil {
		t.Fatal(err)
	}
	good := APIKeySet{"k": {ID: "k", SHA256: HashAPIKey(key), Scopes: []string{ScopeTokenRead}}}
	if p, r, _ := verifyAPIKey(good, key, time.Now()); p == nil {
		t.Fatalf("valid key refused: %s", r)
	}
	// An entry whose hash is the zero value's (what an unknown id compares against) never matches.
	zero := APIKeySet{"k": {ID: "k", SHA256: "", Scopes: []string{ScopeTokenRead}}}
	if p, r, _ := verifyAPIKey(zero, key, time.Now()); p != nil || r != ReasonInvalid {
		t.Fatalf("key against an empty stored hash: %v %s", p, r)
	}
}
