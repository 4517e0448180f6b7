package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
)

func sampleCheckpoint(k *signingKey) *store.Checkpoint {
	c := &store.Checkpoint{
		ID: 7, Sequence: 1234, Hash: bytes.Repeat([]byte{0xab}, 32), Time: time.Date(2026, 11, 26, 9, 30, 0, 5000, time.UTC),
		Kind: int32(auditv1.CheckpointKind_CHECKPOINT_KIND_RETENTION), AnchorSeq: 1000, AnchorHash: bytes.Repeat([]byte{0x01}, 32),
		KeyID: k.keyID, PublicKey: k.pub,
	}
	c.SignedText = SignedText(c)
	c.Signature = ed25519.Sign(k.priv, []byte(c.SignedText))
	return c
}

func TestSignedTextFormat(t *testing.T) {
	k := newTestKey(t)
	c := sampleCheckpoint(k)
	want := "sergas-audit-checkpoint v1\n" +
		"sequence: 1234\n" +
		"hash: " + strings.Repeat("ab", 32) + "\n" +
		"time: 2026-11-26T09:30:00.000005Z\n" +
		"kind: retention\n" +
		"anchor-sequence: 1000\n" +
		"anchor-hash: " + strings.Repeat("01", 32) + "\n" +
		"key-id: " + k.keyID + "\n"
	if c.SignedText != want {
		t.Fatalf("signed text:\n%s\nwant:\n%s", c.SignedText, want)
	}
	back, err := ParseSignedText(c.SignedText)
	if err != nil {
		t.Fatal(err)
	}
	if back.Sequence != c.Sequence || !bytes.Equal(back.Hash, c.Hash) || !back.Time.Equal(c.Time) || back.Kind != c.Kind ||
		back.AnchorSeq != c.AnchorSeq || !bytes.Equal(back.AnchorHash, c.AnchorHash) || back.KeyID != c.KeyID {
		t.Fatalf("parsed back: %+v", back)
	}
	for _, bad := range []string{
		strings.TrimSuffix(want, "\n"), want + "extra: 1\n", strings.Replace(want, "kind: retention", "kind: other", 1),
		strings.Replace(want, "sequence: 1234", "sequence: 01234", 1), strings.Replace(want, "v1", "v2", 1),
		strings.Replace(want, "ab", "AB", 1), strings.ReplaceAll(want, "\n", "\r\n"),
	} {
		if _, err := ParseSignedText(bad); err == nil {
			t.Errorf("parsed a text SignedText would not write:\n%q", bad)
		}
	}
}

// TestCheckpointSignatureVerifies: crypto/ed25519 verifies the signature over the signed text with the
// stored public key; a changed field, text, key or signature does not verify.
func TestCheckpointSignatureVerifies(t *testing.T) {
	k := newTestKey(t)
	c := sampleCheckpoint(k)
	if !ed25519.Verify(c.PublicKey, []byte(c.SignedText), c.Signature) || VerifyCheckpoint(c) != nil {
		t.Fatalf("a fresh checkpoint does not verify: %v", VerifyCheckpoint(c))
	}
	other := newTestKey(t)
	for name, change := range map[string]func(c *store.Checkpoint){
		"sequence":  func(c *store.Checkpoint) { c.Sequence++ },
		"hash":      func(c *store.Checkpoint) { c.Hash = chain.Genesis },
		"anchor":    func(c *store.Checkpoint) { c.AnchorSeq-- },
		"text":      func(c *store.Checkpoint) { c.SignedText = strings.Replace(c.SignedText, "1234", "1235", 1) },
		"signature": func(c *store.Checkpoint) { c.Signature = append([]byte{}, c.Signature...); c.Signature[0] ^= 1 },
		"key":       func(c *store.Checkpoint) { c.PublicKey, c.KeyID = other.pub, other.keyID },
		"key id":    func(c *store.Checkpoint) { c.KeyID = other.keyID },
	} {
		cc := *sampleCheckpoint(k)
		change(&cc)
		if VerifyCheckpoint(&cc) == nil {
			t.Errorf("changed %s: still verifies", name)
		}
	}
}

// TestOpenSSLVerifiesACheckpoint: a third party checks a checkpoint with openssl alone, from the PEM
// public key GetSigningKey serves, the signed text and the raw signature.
func TestOpenSSLVerifiesACheckpoint(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	k := newTestKey(t)
	c := sampleCheckpoint(k)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, text, sig := write("key.pem", []byte(PublicKeyPEM(k.pub))), write("text", []byte(c.SignedText)), write("sig", c.Signature)
	verify := func() (string, error) {
		out, err := exec.CommandContext(context.Background(), "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", key,
			"-rawin", "-in", text, "-sigfile", sig).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "Signature Verified Successfully") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	write("text", []byte(strings.Replace(c.SignedText, "1234", "1235", 1)))
	if out, err := verify(); err == nil {
		t.Fatalf("openssl verified a changed text:\n%s", out)
	}
}
