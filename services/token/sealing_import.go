package token

import (
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/token/store"
)

// SealTokens seals a connection's access and refresh tokens with ring's primary key, bound to the row
// and column as the service binds them: for importers (sergasctl import-legacy) that write connections
// through the store. An empty token stays unset (nil).
func SealTokens(ring *keyring.Keyring, k store.Key, access, refresh string) (sealedAccess, sealedRefresh []byte, err error) {
	s := sealer{ring: ring}
	if sealedAccess, err = s.seal(k, "access_token", access); err != nil {
		return nil, nil, err
	}
	if sealedRefresh, err = s.seal(k, "refresh_token", refresh); err != nil {
		return nil, nil, err
	}
	return sealedAccess, sealedRefresh, nil
}
