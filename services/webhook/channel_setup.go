package webhook

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/webhook/store"
)

// Tokens is the option that lets the server ask rt's token service for Zoho connections' access tokens,
// which managing channels needs.
func Tokens(rt *app.Runtime) Option {
	return func(s *Server) {
		if rt != nil && rt.Tokens != nil {
			s.tokens = rt.Tokens
		}
	}
}

// withAccessTokens gives the server a token source directly (tests).
func withAccessTokens(t accessTokens) Option { return func(s *Server) { s.tokens = t } }

// WithKeyring is the option that seals and opens channel tokens with ring.
func WithKeyring(ring *keyring.Keyring) Option { return func(s *Server) { s.ring = ring } }

// loadChannelKeyring reads WEBHOOK_ENCRYPTION_KEYS, or in development the key in DATA_DIR; nil when
// neither is set (production without the variable: channels cannot be created).
func loadChannelKeyring(c ChannelConfig) (*keyring.Keyring, error) {
	if c.Keys == "" && c.DevKeyFile == "" {
		return nil, nil
	}
	return keyring.Load("WEBHOOK_ENCRYPTION_KEYS", c.Keys, c.DevKeyFile)
}

// checkChannelKeys refuses to start when live channels are stored but their tokens cannot be opened:
// every notification of theirs would be refused.
func checkChannelKeys(ctx context.Context, st store.ChannelStore, ring *keyring.Keyring, log *slog.Logger) error {
	counts, err := st.ChannelCounts(ctx)
	if err != nil {
		return err
	}
	live := counts[store.ChannelActive] + counts[store.ChannelFailing] + counts[store.ChannelExpired]
	if ring == nil {
		if live > 0 {
			return fmt.Errorf("WEBHOOK_ENCRYPTION_KEYS is not set, but %d Zoho channel(s) are stored whose tokens it sealed; set it", live)
		}
		log.Info("Zoho channels are off: set WEBHOOK_ENCRYPTION_KEYS (and TOKEN_CLIENT_API_KEY) to manage them", "service", "webhook")
	}
	return nil
}

// channelOptions loads the channels' keyring and checks it against the stored channels, for Open.
func channelOptions(ctx context.Context, cfg ChannelConfig, st store.Store, log *slog.Logger) ([]Option, error) {
	ring, err := loadChannelKeyring(cfg)
	if err != nil {
		return nil, err
	}
	if cs, ok := st.(store.ChannelStore); ok {
		if err := checkChannelKeys(ctx, cs, ring, log); err != nil {
			return nil, err
		}
	}
	if err := checkPushKeys(ctx, st, ring); err != nil {
		return nil, err
	}
	return []Option{WithKeyring(ring)}, nil
}

// channelWorkers is the channel renewer: on one replica only, so that two never renew one channel at
// once.
func (s *Server) channelWorkers() []app.Worker {
	if s.chans == nil {
		return nil
	}
	return []app.Worker{{Name: "webhook.channel_renewer", Run: s.chans.runRenewer, SingleReplica: true}}
}
