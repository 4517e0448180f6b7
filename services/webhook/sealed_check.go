package webhook

import (
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/webhook/store"
)

// LoadKeyring reads the keyring that seals Zoho channel tokens and push signing secrets as the service
// does: WEBHOOK_ENCRYPTION_KEYS, or in development the key kept in DATA_DIR (made on first use); nil
// when neither is set. For sergasctl setup and validate.
func LoadKeyring(cfg Config) (*keyring.Keyring, error) { return loadChannelKeyring(cfg.Channels) }

// OpenChannelToken opens c's sealed token with ring, as the channel manager does, and throws it away.
// For sergasctl validate.
func OpenChannelToken(ring *keyring.Keyring, c *store.Channel) error {
	_, err := ring.Open(c.SealedToken, tokenAAD(c.ID))
	return err
}

// OpenPushSecrets opens push subscription s's sealed signing secret, and its previous one when kept, as
// the push workers do, and throws them away. For sergasctl validate.
func OpenPushSecrets(ring *keyring.Keyring, s *store.Subscription) error {
	if s.Push == nil {
		return nil
	}
	for _, sealed := range [][]byte{s.Push.Secret, s.Push.PreviousSecret} {
		if len(sealed) == 0 {
			continue
		}
		if _, err := openSigningSecret(ring, s.ID, sealed); err != nil {
			return err
		}
	}
	return nil
}
