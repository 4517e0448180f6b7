package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/sergas/core/internal/keyring"
)

// testPushRing is a keyring for sealing signing secrets in tests.
func testPushRing(t testing.TB) *keyring.Keyring {
	t.Helper()
	spec, err := keyring.NewKeySpec("k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// newSigningSecret is a fresh "whsec_" secret of n random bytes.
func newSigningSecret(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}
