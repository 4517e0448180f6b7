package audit

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// keyStore answers SigningKeyGet with pub whatever the id (a row changed in the database).
type keyStore struct {
	store.Store
	pub []byte
}

func (k keyStore) SigningKeyGet(context.Context, string) ([]byte, error) { return k.pub, nil }

// TestSigningKeyServedOnlyUnderItsOwnID: a public key stored under an id that is not its own is not
// served as that id's key; the key under its own id is.
func TestSigningKeyServedOnlyUnderItsOwnID(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := keyStore{pub: pub}
	if _, err := newKnownKeys().get(context.Background(), st, "0123456789abcdef"); errs.KindOf(err) != errs.KindNotFound {
		t.Fatalf("a key under another id: %v, want NotFound", err)
	}
	got, err := newKnownKeys().get(context.Background(), st, KeyID(pub))
	if err != nil || string(got) != string(pub) {
		t.Fatalf("the key under its own id: %v", err)
	}
}
