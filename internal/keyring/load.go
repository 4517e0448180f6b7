package keyring

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sergas/core/internal/keyfile"
)

// Load parses spec (the value of the variable named envVar, which error messages name), or, when spec
// is empty and devFile is set (development mode), reads the key kept in devFile, creating it once with
// mode 0600 (internal/keyfile) so that restarts open what earlier runs sealed.
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
			// Of processes making it at once, one wins and the others read its key: two keys would
			// leave what one of them sealed unreadable.
			if err := keyfile.CreateOnce(devFile, []byte(spec+"\n")); errors.Is(err, os.ErrExist) {
				return Load(envVar, "", devFile)
			} else if err != nil {
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
