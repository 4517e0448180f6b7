package keyring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Load parses spec (the value of the variable named envVar, which error messages name), or, when spec
// is empty and devFile is set (development mode), reads the key kept in devFile, creating it once with
// mode 0600 so that restarts open what earlier runs sealed.
func Load(envVar, spec, devFile string) (*Keyring, error) {
	if spec == "" && devFile != "" {
		raw, err := os.ReadFile(devFile)
		switch {
		case err == nil:
			spec = strings.TrimSpace(string(raw))
		case errors.Is(err, os.ErrNotExist):
			if spec, err = NewKeySpec("dev"); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(filepath.Dir(devFile), 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(devFile, []byte(spec+"\n"), 0o600); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
	ring, err := Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envVar, err)
	}
	return ring, nil
}
