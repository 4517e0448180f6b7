package token

import (
	"context"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/services/token/store"
)

// Recorder returns the runtime's audit client as an AuditRecorder, or nil when there is none.
func Recorder(rt *app.Runtime) AuditRecorder {
	if rt == nil || rt.Audit == nil {
		return nil
	}
	return rt.Audit
}

// Reseal re-seals every connection not sealed with the primary key. Each row is replaced only if it has
// not changed since it was read (its version), so a refresh running at the same time is never undone;
// such a row is simply read again.
func Reseal(ctx context.Context, cfg Config, log *slog.Logger) (int, error) {
	ring, err := loadKeyring(cfg.Keys, cfg.DevKeyFile)
	if err != nil {
		return 0, err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	s := sealer{ring}
	done := 0
	for {
		rows, err := st.ConnectionsNotSealedWith(ctx, ring.Primary, 100)
		if err != nil || len(rows) == 0 {
			return done, err
		}
		for _, c := range rows {
			if err := resealOne(s, c); err != nil {
				return done, err
			}
			ok, err := st.ConnectionReseal(ctx, c)
			if err != nil {
				return done, err
			}
			if ok {
				done++
			}
		}
	}
}

func resealOne(s sealer, c *store.Connection) error {
	k := store.Key{Provider: c.Provider, ConnectionID: c.ConnectionID}
	for _, col := range []struct {
		name string
		v    *[]byte
	}{{"access_token", &c.AccessToken}, {"refresh_token", &c.RefreshToken}, {"client_secret", &c.ClientSecret}} {
		pt, err := s.open(k, col.name, *col.v)
		if err != nil {
			return err
		}
		if *col.v, err = s.seal(k, col.name, pt); err != nil {
			return err
		}
	}
	c.KeyID = s.ring.Primary
	return nil
}
