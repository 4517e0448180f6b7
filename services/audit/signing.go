package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/sergas/core/internal/keyfile"
)

// signingKey is the Ed25519 key that signs checkpoints. The private half stays in this struct: it is
// never logged, returned or counted (String prints the key id only).
type signingKey struct {
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey
	keyID string
}

// String names the key without its private half, should one ever reach a log line by mistake.
func (k *signingKey) String() string { return "ed25519 signing key " + k.keyID }

// KeyID is the id of an Ed25519 public key: the first 8 bytes of the SHA-256 of its 32 raw bytes, in
// hex (16 characters). Anyone holding the public key computes the same id.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PublicKeyPEM is pub as a PEM "PUBLIC KEY" block (SubjectPublicKeyInfo), the form openssl reads.
func PublicKeyPEM(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an ed25519.PublicKey always marshals
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func newSigningKey(priv ed25519.PrivateKey) *signingKey {
	pub := priv.Public().(ed25519.PublicKey)
	return &signingKey{priv: priv, pub: pub, keyID: KeyID(pub)}
}

// parseSigningKey reads a PEM "PRIVATE KEY" block holding an Ed25519 key in PKCS #8, as
// `openssl genpkey -algorithm ed25519` writes it. The errors never quote the file's content.
func parseSigningKey(raw []byte) (*signingKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`does not hold a PEM "PRIVATE KEY" block (openssl genpkey -algorithm ed25519)`)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("does not hold a PKCS #8 private key")
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("holds a private key that is not Ed25519")
	}
	return newSigningKey(priv), nil
}

// loadSigningKey reads the key file named by AUDIT_SIGNING_KEY.
func loadSigningKey(path string) (*signingKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		// The path is the operator's own setting; the OS error says whether it is missing or unreadable.
		return nil, fmt.Errorf("AUDIT_SIGNING_KEY: %w", err)
	}
	k, err := parseSigningKey(raw)
	if err != nil {
		return nil, fmt.Errorf("AUDIT_SIGNING_KEY: %s %w", path, err)
	}
	return k, nil
}

// devSigningKey returns the development key kept in path, creating it (mode 0600) the first time; created
// says it was made now. Two processes starting together make one key: the loser of the race reads the
// winner's.
func devSigningKey(path string) (k *signingKey, created bool, err error) {
	if raw, err := os.ReadFile(path); err == nil {
		k, err := parseSigningKey(raw)
		if err != nil {
			return nil, false, fmt.Errorf("%s %w; delete it to make a new development key", path, err)
		}
		return k, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	k, err = writeSigningKey(path) // keyfile.CreateOnce makes the directory
	if errors.Is(err, os.ErrExist) {
		k, _, err := devSigningKey(path)
		return k, false, err
	}
	return k, err == nil, err
}

// WriteSigningKeyFile makes a new Ed25519 signing key and writes it to path (mode 0600) in the form
// AUDIT_SIGNING_KEY reads, as `openssl genpkey -algorithm ed25519` would; it refuses to replace an
// existing file (os.ErrExist). It returns the key's id. For tests and tools that need a key file.
func WriteSigningKeyFile(path string) (keyID string, err error) {
	k, err := writeSigningKey(path)
	if err != nil {
		return "", err
	}
	return k.keyID, nil
}

// writeSigningKey writes a new key to a temporary file and links it into place, so that a reader never
// sees a half-written key and an existing file is never replaced.
func writeSigningKey(path string) (*signingKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := keyfile.CreateOnce(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return newSigningKey(priv), nil
}
