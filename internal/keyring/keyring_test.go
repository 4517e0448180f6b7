package keyring

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func mustParse(t *testing.T, spec string) *Keyring {
	t.Helper()
	k, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRotate(t *testing.T) {
	old, _ := NewKeySpec("k1")
	next, _ := NewKeySpec("k2")
	k1 := mustParse(t, old)
	sealed, err := k1.Seal([]byte("refresh-token-secret"), []byte("zoho/org-1/refresh"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("refresh-token-secret")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	rotated := mustParse(t, next+","+old)
	if rotated.Primary != "k2" {
		t.Fatalf("primary %s", rotated.Primary)
	}
	pt, err := rotated.Open(sealed, []byte("zoho/org-1/refresh"))
	if err != nil || string(pt) != "refresh-token-secret" {
		t.Fatalf("old key no longer opens: %v", err)
	}
	resealed, _ := rotated.Seal(pt, []byte("zoho/org-1/refresh"))
	if id, _ := KeyID(resealed); id != "k2" {
		t.Fatalf("resealed under %s", id)
	}
	if _, err := k1.Open(resealed, []byte("zoho/org-1/refresh")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := rotated.Open(sealed, []byte("zoho/org-2/refresh")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("value moved to another row opened: %v", err)
	}
	wrong, _ := NewKeySpec("k1") // same id, other material
	if _, err := mustParse(t, wrong).Open(sealed, []byte("zoho/org-1/refresh")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong key material: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := rotated.Open(sealed, []byte("zoho/org-1/refresh")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("altered value: %v", err)
	}
}

func TestParseErrorsHideKeyMaterial(t *testing.T) {
	for _, spec := range []string{"", "nokey", "k1:c2hvcnQ=", "bad id!:AAAA", "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="} {
		_, err := Parse(spec)
		if err == nil {
			t.Errorf("%q accepted", spec)
			continue
		}
		if strings.Contains(err.Error(), "c2hvcnQ") || strings.Contains(err.Error(), "AAAAAAAA") {
			t.Errorf("error repeats key material: %v", err)
		}
	}
}
