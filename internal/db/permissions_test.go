package db_test

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
)

// The database holds sealed tokens and the audit log: its file, WAL and shared-memory index are
// readable by the service's user only, in a directory only that user can list.
func TestSQLiteFilesArePrivate(t *testing.T) {
	ctx := context.Background()
	cfg := dbtest.Config(t, db.SQLite)
	dir := filepath.Join(t.TempDir(), "data", "nested")
	cfg.SQLitePath = filepath.Join(dir, "token.db")
	h, err := db.Open(ctx, cfg, "token", true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// A write makes sure the WAL and its index exist before their modes are checked.
	if _, err := h.SQLite.Write.ExecContext(ctx, "CREATE TABLE perm_probe (x INTEGER); INSERT INTO perm_probe VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	mode := func(p string) fs.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("data directory mode %o, want 700", m)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if m := mode(cfg.SQLitePath + suffix); m != 0o600 {
			t.Errorf("token.db%s mode %o, want 600", suffix, m)
		}
	}
}

// A database created by an older version (or by hand) with looser modes is tightened when opened.
func TestSQLiteTightensExistingFiles(t *testing.T) {
	ctx := context.Background()
	cfg := dbtest.Config(t, db.SQLite)
	if err := os.WriteFile(cfg.SQLitePath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg.SQLitePath, 0o644); err != nil { // whatever the umask left
		t.Fatal(err)
	}
	h, err := db.Open(ctx, cfg, "audit", true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fi, err := os.Stat(cfg.SQLitePath)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("existing database mode %o, want 600", m)
	}
}

// The reviewer's P3: a data directory that exists already keeps the mode it was made with (MkdirAll
// applies 0700 only on creation). Opening tightens it when the directory is clearly the service's own,
// and leaves a shared one alone with a warning.
func TestSQLiteTightensAnExistingDataDirectory(t *testing.T) {
	mk := func(t *testing.T, extra string) (string, db.Config) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask left
			t.Fatal(err)
		}
		for _, f := range []string{"audit.db", "dev-api-key", "dev-token-key", "dev-audit-signing-key", ".dev-webhook-key-123", extra} {
			if f != "" {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		cfg := dbtest.Config(t, db.SQLite)
		cfg.SQLitePath = filepath.Join(dir, "token.db")
		return dir, cfg
	}
	t.Run("own", func(t *testing.T) {
		dir, cfg := mk(t, "")
		openAndClose(t, cfg)
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("existing data directory: mode %v (%v), want 700", fi.Mode().Perm(), err)
		}
	})
	t.Run("shared", func(t *testing.T) {
		dir, cfg := mk(t, "someone-elses.txt")
		var logs testutil.LogBuffer
		cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
		openAndClose(t, cfg)
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("a directory holding other files was changed: mode %v (%v)", fi.Mode().Perm(), err)
		}
		if !strings.Contains(logs.String(), "chmod 700") {
			t.Fatalf("no warning about the directory's mode: %q", logs.String())
		}
	})
}

func openAndClose(t *testing.T, cfg db.Config) {
	t.Helper()
	h, err := db.Open(context.Background(), cfg, "token", true)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}
