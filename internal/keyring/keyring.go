// Package keyring seals secrets at rest with AES-256-GCM under named keys: the first key seals, every key
// opens, so keys can be rotated by adding a new first key and re-sealing.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// format is the version byte of a sealed value: 1 = [1][len(id)][id][12-byte nonce][ciphertext+tag].
const format = 1

var keyID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Keyring holds the keys by id; Primary seals.
type Keyring struct {
	Primary string
	aeads   map[string]cipher.AEAD
	ids     []string
}

// Parse reads "id:base64key,id:base64key" (32-byte keys, standard or URL base64). The first key seals.
// Errors never include key material.
func Parse(spec string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		id, b64, ok := strings.Cut(part, ":")
		if !ok || !keyID.MatchString(id) {
			return nil, fmt.Errorf("key %d: want id:base64key with an id of 1-32 letters, digits, '-' or '_'", i+1)
		}
		raw, err := decode(b64)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("key %q: must be 32 bytes, base64-encoded (head -c 32 /dev/urandom | base64)", id)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("key %q appears twice", id)
		}
		block, _ := aes.NewCipher(raw)
		k.aeads[id], _ = cipher.NewGCM(block)
		k.ids = append(k.ids, id)
		if i == 0 {
			k.Primary = id
		}
	}
	return k, nil
}

func decode(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// NewKeySpec returns a fresh "id:base64key" entry.
func NewKeySpec(id string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(b[:]), nil
}

// Has reports whether the keyring holds key id.
func (k *Keyring) Has(id string) bool { _, ok := k.aeads[id]; return ok }

// IDs lists the key ids, primary first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// Seal encrypts plaintext under the primary key, bound to aad (the row and column it belongs to, so that
// a sealed value copied elsewhere does not open).
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	aead := k.aeads[k.Primary]
	out := make([]byte, 0, 2+len(k.Primary)+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, format, byte(len(k.Primary)))
	out = append(out, k.Primary...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, aad), nil
}

// ErrUnknownKey and ErrCorrupt are what Open fails with; neither carries secret material.
var (
	ErrUnknownKey = errors.New("sealed with a key that is not in the keyring")
	ErrCorrupt    = errors.New("cannot be opened: wrong key material, altered data or wrong row")
)

// KeyID returns the id of the key that sealed b.
func KeyID(b []byte) (string, error) {
	if len(b) < 2 || b[0] != format || len(b) < 2+int(b[1]) {
		return "", ErrCorrupt
	}
	return string(b[2 : 2+int(b[1])]), nil
}

// Open decrypts a value made by Seal with the same aad.
func (k *Keyring) Open(b, aad []byte) ([]byte, error) {
	id, err := KeyID(b)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("key %q: %w", id, ErrUnknownKey)
	}
	rest := b[2+len(id):]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrCorrupt
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", id, ErrCorrupt)
	}
	return pt, nil
}
