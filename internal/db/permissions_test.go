package db_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
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
