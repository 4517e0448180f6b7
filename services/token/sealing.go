package token

import (
	"fmt"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/token/store"
)

// sealer seals a connection's secrets, each bound to its row and column.
type sealer struct{ ring *keyring.Keyring }

func aad(k store.Key, column string) []byte {
	return []byte(k.Provider + "\x00" + k.ConnectionID + "\x00" + column)
}

func (s sealer) seal(k store.Key, column, plaintext string) ([]byte, error) {
	if plaintext == "" {
		return nil, nil
	}
	return s.ring.Seal([]byte(plaintext), aad(k, column))
}

func (s sealer) open(k store.Key, column string, sealed []byte) (string, error) {
	if sealed == nil {
		return "", nil
	}
	pt, err := s.ring.Open(sealed, aad(k, column))
	if err != nil {
		// The error names the key id and the kind of failure, never material.
		return "", errs.Wrap(errs.KindFailedPrecondition, err, fmt.Sprintf("stored %s of %s/%s cannot be opened: %v; check TOKEN_ENCRYPTION_KEYS",
			column, k.Provider, k.ConnectionID, err))
	}
	return string(pt), nil
}

// loadKeyring parses the spec, or reads (creating once, mode 0600) the development key file.
func loadKeyring(spec, devFile string) (*keyring.Keyring, error) {
	return keyring.Load("TOKEN_ENCRYPTION_KEYS", spec, devFile)
}
