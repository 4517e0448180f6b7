package audit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/config"
)

// writeKeyFile writes priv as `openssl genpkey -algorithm ed25519` does and returns the path.
func writeKeyFile(t *testing.T, priv any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestKey(t *testing.T) *signingKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigningKey(priv)
}

func TestKeyIDIsTheStartOfTheKeysSHA256(t *testing.T) {
	k := newTestKey(t)
	sum := sha256.Sum256(k.pub)
	if k.keyID != hex.EncodeToString(sum[:8]) || len(k.keyID) != 16 || KeyID(k.pub) != k.keyID {
		t.Fatalf("key id %q", k.keyID)
	}
	if s := k.String(); strings.Contains(s, base64.StdEncoding.EncodeToString(k.priv.Seed())) || !strings.Contains(s, k.keyID) {
		t.Fatalf("String() = %q", s)
	}
}

// TestDevSigningKeyIsMadeOnceAndKept: the development key is created with mode 0600 (in a directory
// made 0700) on first use and read back unchanged afterwards; a file that holds no key is refused
// without quoting it.
func TestDevSigningKeyIsMadeOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "dev-audit-signing-key")
	first, created, err := devSigningKey(path)
	if err != nil || !created {
		t.Fatalf("first use: created=%v %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", info.Mode().Perm(), err)
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode %v, want 0700", dir.Mode().Perm())
	}
	again, created, err := devSigningKey(path)
	if err != nil || created || again.keyID != first.keyID || !bytes.Equal(again.priv, first.priv) {
		t.Fatalf("second use: created=%v key %s vs %s (%v)", created, again.keyID, first.keyID, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("%d files beside the key (a temporary file left behind?)", len(entries))
	}
	if err := os.WriteFile(path, []byte("not-a-key-SECRETVALUE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := devSigningKey(path); err == nil || strings.Contains(err.Error(), "SECRETVALUE") {
		t.Fatalf("corrupt development key: %v", err)
	}
}

func TestLoadSigningKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	k, err := loadSigningKey(writeKeyFile(t, priv))
	if err != nil || !bytes.Equal(k.priv, priv) {
		t.Fatalf("Go-written key: %v", err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := loadSigningKey(writeKeyFile(t, ec)); err == nil || !strings.Contains(err.Error(), "not Ed25519") {
		t.Fatalf("P-256 key: %v", err)
	}
	if _, err := loadSigningKey(filepath.Join(t.TempDir(), "missing.pem")); err == nil || !strings.Contains(err.Error(), "AUDIT_SIGNING_KEY") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl is not installed: the openssl-made key is not tried")
		return
	}
	path := filepath.Join(t.TempDir(), "openssl.pem")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "ed25519", "-out", path).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	if _, err := loadSigningKey(path); err != nil {
		t.Fatalf("openssl-made key: %v", err)
	}
}

// TestSigningConfiguration: a key file is used as given; development mode keeps a key under DATA_DIR;
// production without a key is refused, naming AUDIT_SIGNING_KEY.
func TestSigningConfiguration(t *testing.T) {
	env := config.FromMap(map[string]string{"AUDIT_SIGNING_KEY": "/etc/sergas/audit/key.pem", "AUDIT_CHECKPOINT_INTERVAL": "90s"})
	if s := loadSigning(env); env.Err() != nil || s.KeyFile != "/etc/sergas/audit/key.pem" || s.Interval != 90*time.Second || s.DevKeyFile != "" {
		t.Fatalf("key file: %+v %v", s, env.Err())
	}
	env = config.FromMap(map[string]string{"SERGAS_ENV": "development", "DATA_DIR": "/tmp/d", "AUDIT_CHECKPOINT_INTERVAL": "0"})
	if s := loadSigning(env); env.Err() != nil || s.DevKeyFile != "/tmp/d/dev-audit-signing-key" || s.Interval != 0 {
		t.Fatalf("development: %+v %v", s, env.Err())
	}
	env = config.FromMap(nil)
	s := loadSigning(env)
	if s.Interval != DefaultCheckpointInterval {
		t.Fatalf("default interval %v", s.Interval)
	}
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "AUDIT_SIGNING_KEY") {
		t.Fatalf("production without a key: %v", err)
	}
}

// TestStartLogsThePublicKeyOnly: the key is logged at start as its id and public key, never its
// private half (neither the seed nor the PEM file's body).
func TestStartLogsThePublicKeyOnly(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	path := writeKeyFile(t, priv)
	raw, _ := os.ReadFile(path)
	block, _ := pem.Decode(raw)
	var logs bytes.Buffer
	k, err := Signing{KeyFile: path}.key(slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, k.keyID) || !strings.Contains(out, base64.StdEncoding.EncodeToString(k.pub)) {
		t.Fatalf("public key not logged:\n%s", out)
	}
	for _, secret := range []string{base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(block.Bytes),
		hex.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(priv)} {
		if strings.Contains(out, secret) {
			t.Fatalf("the private key reached the log:\n%s", out)
		}
	}
}

func TestWriteSigningKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	id, err := WriteSigningKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := loadSigningKey(path)
	if err != nil || k.keyID != id {
		t.Fatalf("written key: %v (%s vs %s)", err, k.keyID, id)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode().Perm())
	}
	if _, err := WriteSigningKeyFile(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second write over the key: %v", err)
	}
	if again, _ := loadSigningKey(path); again.keyID != id {
		t.Fatal("the key was replaced")
	}
}
