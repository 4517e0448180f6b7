package token

import (
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/token/store"
)

// LoadKeyring reads the keyring the service seals with: TOKEN_ENCRYPTION_KEYS, or in development the key
// kept in DATA_DIR (made on first use). For sergasctl setup and validate.
func LoadKeyring(cfg Config) (*keyring.Keyring, error) { return loadKeyring(cfg.Keys, cfg.DevKeyFile) }

// OpenSealed opens every sealed column of c with ring, as the service does to answer and refresh, and
// throws the plaintext away: it tells whether ring still opens what c holds. The error names the column,
// the connection and the key id, never material. For sergasctl validate.
func OpenSealed(ring *keyring.Keyring, c *store.Connection) error {
	s := sealer{ring}
	k := store.Key{Provider: c.Provider, ConnectionID: c.ConnectionID}
	for _, col := range []struct {
		name string
		v    []byte
	}{{"access_token", c.AccessToken}, {"refresh_token", c.RefreshToken}, {"client_secret", c.ClientSecret}} {
		if _, err := s.open(k, col.name, col.v); err != nil {
			return err
		}
	}
	return nil
}
