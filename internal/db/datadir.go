package db

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// privateDir makes an existing data directory private (0700): MkdirAll applies its mode only to the
// directories it creates, and one made earlier (by hand, by an older version, by an image) often lets
// every user list it. The mode is changed only where the directory is clearly the service's own: owned
// by this user, not a shared (sticky) directory such as /tmp, and holding nothing but the platform's
// database files and development keys. Anywhere else changing it could break other software, so a
// warning says what to do instead.
func privateDir(dir, dbFile string, log *slog.Logger) {
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	warn := func(why string) {
		log.Warn("data directory can be listed by other users; make it private (chmod 700)",
			"dir", dir, "mode", fmt.Sprintf("%o", fi.Mode().Perm()), "not_changed_because", why)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		warn("another user owns it")
		return
	}
	if fi.Mode()&os.ModeSticky != 0 {
		warn("it is a shared directory")
		return
	}
	if !onlyPlatformFiles(dir, dbFile) {
		warn("it holds files other than the platform's")
		return
	}
	if err := os.Chmod(dir, fi.Mode().Perm()&^0o077); err != nil {
		warn("chmod failed: " + err.Error())
	}
}

// maxDirEntries bounds how much of a directory onlyPlatformFiles reads.
const maxDirEntries = 256

// onlyPlatformFiles reports whether dir holds only SQLite databases and their side files, the file
// dbFile and the development keys.
func onlyPlatformFiles(dir, dbFile string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(maxDirEntries + 1)
	if (err != nil && !errors.Is(err, io.EOF)) || len(names) > maxDirEntries {
		return false
	}
	base := filepath.Base(dbFile)
	for _, n := range names {
		trimmed := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "-wal"), "-shm"), "-journal")
		// Development keys: dev-api-key, dev-token-key, dev-webhook-key, dev-audit-signing-key, and
		// ".dev-…-…" while one is written (internal/keyfile).
		if trimmed != base && !strings.HasSuffix(trimmed, ".db") && !strings.HasPrefix(strings.TrimPrefix(n, "."), "dev-") {
			return false
		}
	}
	return true
}
