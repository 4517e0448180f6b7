package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// API keys look like "sgk_<id>.<secret>": the id finds the stored entry without a scan and is safe to
// log; the secret is 32 random bytes, base64url. Only the SHA-256 of the whole key is stored: keys are
// random, so a fast hash is enough and a slow one would only slow every request.
const apiKeyPrefix = "sgk_"

// validKeyID reports whether id is 1-32 lower-case letters, digits or '-', not starting with '-'
// (^[a-z0-9][a-z0-9-]{0,31}$). It is checked on every call that presents a key, where a regular
// expression cost more than the key's SHA-256.
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > 32 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NewAPIKey returns a fresh key with the given id.
func NewAPIKey(id string) (string, error) {
	if !validKeyID(id) {
		return "", fmt.Errorf("api key id must be 1-32 lower-case letters, digits or '-'")
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return apiKeyPrefix + id + "." + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashAPIKey returns the hex SHA-256 that configuration stores for key.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// ParseAPIKey splits a presented key into its id, or fails when it is not shaped like a key.
func ParseAPIKey(key string) (id string, err error) {
	rest, ok := strings.CutPrefix(key, apiKeyPrefix)
	if !ok {
		return "", errors.New("not an API key")
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok || !validKeyID(id) || len(secret) < 16 || len(secret) > 128 {
		return "", errors.New("malformed API key")
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", errors.New("malformed API key")
		}
	}
	return id, nil
}

// APIKey is one configured key, as stored: never the key itself.
type APIKey struct {
	ID        string     `json:"id"`
	SHA256    string     `json:"sha256"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked,omitempty"`
}

// APIKeySet is the configured keys by id.
type APIKeySet map[string]APIKey

// ParseAPIKeys reads {"keys":[…]} and checks every entry.
func ParseAPIKeys(raw []byte) (APIKeySet, error) {
	var doc struct {
		Keys []APIKey `json:"keys"`
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("api keys: not valid JSON of the form {\"keys\":[…]}")
	}
	set := APIKeySet{}
	for i, k := range doc.Keys {
		if err := k.check(); err != nil {
			return nil, fmt.Errorf("api keys: entry %d: %w", i+1, err)
		}
		if _, dup := set[k.ID]; dup {
			return nil, fmt.Errorf("api keys: id %q appears twice", k.ID)
		}
		k.SHA256 = strings.ToLower(k.SHA256)
		set[k.ID] = k
	}
	return set, nil
}

func (k APIKey) check() error {
	if !validKeyID(k.ID) {
		return errors.New("id must be 1-32 lower-case letters, digits or '-'")
	}
	if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("key %q: sha256 must be 64 hex digits", k.ID)
	}
	if len(k.Scopes) == 0 {
		return fmt.Errorf("key %q: scopes must not be empty", k.ID)
	}
	for _, s := range k.Scopes {
		if !KnownScope(s) {
			return fmt.Errorf("key %q: unknown scope %q", k.ID, s)
		}
	}
	return nil
}

// decodeHash decodes the 64 hex digits of a stored hash into dst, reporting whether they were that.
func decodeHash(dst *[sha256.Size]byte, h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(h[2*i])
		lo, ok2 := fromHex(h[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// verifyAPIKey checks a presented key against the set. For a revoked or expired key (its secret matched)
// it also returns the principal id, so that the refusal is recorded against that key.
func verifyAPIKey(set APIKeySet, key string, now time.Time) (p *Principal, r Reason, claimed string) {
	id, err := ParseAPIKey(key)
	if err != nil {
		return nil, ReasonMalformed, ""
	}
	k, ok := set[id]
	// Decoded into an array, not a new slice per call; an unknown id compares against zeros.
	var want [sha256.Size]byte
	decoded := decodeHash(&want, k.SHA256)
	// ParseAPIKey bounds a key to 165 bytes: hashed from a copy on the stack, not a new slice per call.
	var buf [len(apiKeyPrefix) + 32 + 1 + 128]byte
	got := sha256.Sum256(append(buf[:0], key...))
	// Compare even for an unknown id, so that timing does not tell which ids exist.
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1 && decoded
	switch {
	case !ok || !match:
		return nil, ReasonInvalid, ""
	case k.Revoked:
		return nil, ReasonRevoked, "apikey:" + k.ID
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return nil, ReasonExpired, "apikey:" + k.ID
	}
	p = &Principal{ID: "apikey:" + k.ID, Scopes: k.Scopes}
	if k.ExpiresAt != nil {
		p.Expires = *k.ExpiresAt
	}
	return p, "", ""
}
