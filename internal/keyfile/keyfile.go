// Package keyfile creates the key files of development mode (DATA_DIR/dev-*), which processes starting
// together on one data directory may all try to make at once.
package keyfile

import (
	"os"
	"path/filepath"
)

// CreateOnce writes content to path (mode 0600, its directory made 0700 when missing) unless path exists,
// then it returns an error that errors.Is(err, os.ErrExist) recognises. The content is written whole and
// synced to a temporary file beside path (named ".<name>-…") and linked into place, so a reader never sees
// the file empty or half written, and of several processes creating it at once exactly one succeeds.
// The data directory must support hard links (every local Linux file system does).
func CreateOnce(path string, content []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}
