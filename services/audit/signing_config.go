package audit

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
)

// Signing says where the checkpoint signing key comes from and how often the head is signed.
type Signing struct {
	// KeyFile is AUDIT_SIGNING_KEY: a PEM file with a PKCS #8 Ed25519 private key.
	KeyFile string
	// DevKeyFile, in development mode without KeyFile, is where a generated key is kept
	// (DATA_DIR/dev-audit-signing-key).
	DevKeyFile string
	// Interval is AUDIT_CHECKPOINT_INTERVAL; 0 signs on demand only.
	Interval time.Duration
	// PreviousKeyIDs is AUDIT_PREVIOUS_SIGNING_KEY_IDS: the ids of keys rotated away, whose checkpoints
	// VerifyChain still accepts beside the current key's.
	PreviousKeyIDs []string
}

// loadSigning reads the signing settings. Outside development mode a key is required: checkpoints are
// the log's proof against whoever runs its database, and a key made up at start would prove nothing to
// anyone who had not seen it.
func loadSigning(env *config.Env) Signing {
	s := Signing{
		KeyFile:        env.String("AUDIT_SIGNING_KEY", ""),
		Interval:       env.Duration("AUDIT_CHECKPOINT_INTERVAL", DefaultCheckpointInterval, 0, 7*24*time.Hour),
		PreviousKeyIDs: env.List("AUDIT_PREVIOUS_SIGNING_KEY_IDS", nil),
	}
	for _, id := range s.PreviousKeyIDs {
		if !validKeyID(id) {
			env.Fail("AUDIT_PREVIOUS_SIGNING_KEY_IDS", "each id must be 16 lower-case hex digits, as the service logs a key id at start")
		}
	}
	if s.KeyFile == "" {
		if app.Development(env) {
			s.DevKeyFile = filepath.Join(env.String("DATA_DIR", "./data"), "dev-audit-signing-key")
		} else {
			env.Fail("AUDIT_SIGNING_KEY", "is required outside development mode: the path of a PEM Ed25519 private key (openssl genpkey -algorithm ed25519 -out audit-signing-key.pem)")
		}
	}
	return s
}

// key loads the configured key, or the development key (made on first use); nil when neither is
// configured (a Config built by hand: checkpoints are then refused).
func (s Signing) key(log *slog.Logger) (*signingKey, error) {
	switch {
	case s.KeyFile != "":
		k, err := loadSigningKey(s.KeyFile)
		if err != nil {
			return nil, err
		}
		logSigningKey(log, k, "AUDIT_SIGNING_KEY")
		return k, nil
	case s.DevKeyFile != "":
		k, created, err := devSigningKey(s.DevKeyFile)
		if err != nil {
			return nil, err
		}
		source := "development key"
		if created {
			source = "development key, created now"
		}
		logSigningKey(log, k, source)
		return k, nil
	}
	log.Warn("audit checkpoints are off: no signing key configured (AUDIT_SIGNING_KEY)")
	return nil, nil
}
