package audit

import "log/slog"

// SigningKeyID loads the checkpoint signing key exactly as the service does at start (AUDIT_SIGNING_KEY,
// or in development the key kept in DATA_DIR, made on first use) and returns its id; "" when none is
// configured. sergasctl setup makes the development key with it and validate checks the key loads.
func (s Signing) SigningKeyID(log *slog.Logger) (string, error) {
	k, err := s.key(log)
	if err != nil || k == nil {
		return "", err
	}
	return k.keyID, nil
}
