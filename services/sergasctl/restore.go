package sergasctl

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sergas/core/internal/db"
)

func init() {
	register(&command{
		name:    "restore",
		summary: "restore a backup: checks manifest, checksums, integrity, schema version and the audit chain, then swaps atomically",
		usage: `restore [--service token|audit|webhook] [--json] [--yes] BACKUP

BACKUP is a backup's .manifest.json or its .db.gz (the other is found beside it). restore checks,
before it changes anything: the manifest's format and service, the SHA-256 of the .db.gz and of the
database inside it, PRAGMA integrity_check, the row count of every table, and that the schema version
is the manifest's and not newer than this binary's migrations. It refuses while any process has the
service's database file or its WAL open (stop the services first; Linux names them).

Then it asks (--yes skips the question; without a terminal and without --yes nothing changes), keeps
the current database beside it as <file>.before-restore-<UTC time> (with its -wal, so nothing it held
is lost), and renames the checked copy over the file in one atomic step, in WAL mode and 0600.

A PostgreSQL backup (.export.gz) restores into the service's configured database, PostgreSQL or SQLite:
rows load into a staging schema or file made by the migrations of the backup's version, every table's
rows and checksum are compared with the manifest, the audit chain is verified, the newer migrations
run, and the staging database replaces the current one (kept as <schema>_before_restore_<time>).

Exits 0 when restored, 1 when a check fails or the question is not answered yes (nothing changed),
2 on a usage problem, 3 when the backup or the database cannot be reached.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.yes, "yes", false, "do not ask before replacing the database")
		},
		run: runRestore,
	})
}

// restoreResult is restore's report.
type restoreResult struct {
	Service   string    `json:"service"`
	Database  string    `json:"database"`
	Backup    string    `json:"backup"`
	Manifest  *manifest `json:"manifest,omitempty"`
	Restored  bool      `json:"restored"`
	KeptAs    string    `json:"previous_kept_as,omitempty"`
	Error     string    `json:"error,omitempty"`
	OpenBy    []holder  `json:"open_by,omitempty"`
	ExitCode  int       `json:"exit_code"`
	Seconds   float64   `json:"seconds"`
	Checks    []string  `json:"checks"`
	Refusal   string    `json:"refusal,omitempty"`
	startedAt time.Time
}

func runRestore(ctx context.Context, c *cmdCtx) int {
	if len(c.args) != 1 {
		return c.usageError("restore", "name one backup (its .manifest.json or .db.gz)")
	}
	manPath := c.args[0]
	for _, suffix := range []string{".db.gz", exportSuffix} {
		if strings.HasSuffix(manPath, suffix) {
			manPath = strings.TrimSuffix(manPath, suffix) + ".manifest.json"
		}
	}
	raw, err := os.ReadFile(manPath)
	if err != nil {
		return c.fail("restore", unreachablef("read the manifest: %v", err))
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil || m.Format != manifestFormat {
		return c.fail("restore", fmt.Errorf("%s is not a manifest of sergasctl backup (format %q)", manPath, manifestFormat))
	}
	if _, ok := serviceSet[m.Service]; !ok || m.Service == "all" {
		return c.fail("restore", fmt.Errorf("the manifest names an unknown service %q", m.Service))
	}
	if c.opts.service != "all" && c.opts.service != m.Service {
		return c.usageError("restore", "the backup is of %s, not %s", m.Service, c.opts.service)
	}
	targets, err := loadTargets(c.env, m.Service)
	if err != nil {
		return c.configFail("restore", err)
	}
	t := targets[0]
	r := &restoreResult{Service: t.Name, Database: t.DB.Redacted(), Backup: filepath.Join(filepath.Dir(manPath), m.File), Manifest: &m, Checks: []string{}, startedAt: time.Now()}
	err = restoreOne(ctx, c, t, &m, r)
	r.Seconds = time.Since(r.startedAt).Seconds()
	switch {
	case err != nil:
		r.Error, r.ExitCode = err.Error(), max(exitFor(err), ExitFailed)
	case !r.Restored:
		r.ExitCode = ExitFailed
	}
	if c.opts.json {
		_ = writeJSON(c.Stdout, r)
		return r.ExitCode
	}
	for _, ch := range r.Checks {
		fmt.Fprintf(c.Stdout, "%-8s ok    %s\n", r.Service, ch)
	}
	switch {
	case r.Error != "":
		fmt.Fprintf(c.Stdout, "%-8s FAILED: %s (nothing was changed)\n", r.Service, r.Error)
	case r.Restored && r.KeptAs == "":
		fmt.Fprintf(c.Stdout, "%-8s restored %s from %s in %.1fs; it held no data before\n", r.Service, r.Database, r.Backup, r.Seconds)
	case r.Restored:
		fmt.Fprintf(c.Stdout, "%-8s restored %s from %s in %.1fs; the previous database is kept as %s\n", r.Service, r.Database, r.Backup, r.Seconds, r.KeptAs)
	default:
		fmt.Fprintf(c.Stdout, "%-8s not restored: %s\n", r.Service, r.Refusal)
	}
	return r.ExitCode
}

// confirmRestore asks before the database at where is replaced (unless --yes) and records a refusal.
func confirmRestore(c *cmdCtx, t *target, where string, m *manifest, r *restoreResult) bool {
	if c.opts.yes {
		return true
	}
	fmt.Fprintf(c.Stderr, "Replace %s database %s with the backup of %s? The current one is kept beside it. Type yes to go on: ",
		t.Name, where, m.CreatedAt.Format(time.RFC3339))
	line, _ := bufio.NewReader(c.Stdin).ReadString('\n')
	if !strings.HasSuffix(line, "\n") {
		fmt.Fprintln(c.Stderr)
	}
	if strings.TrimSpace(line) != "yes" {
		r.Refusal = "not confirmed (answer yes, or pass --yes)"
		return false
	}
	return true
}

func restoreOne(ctx context.Context, c *cmdCtx, t *target, m *manifest, r *restoreResult) error {
	if m.Dialect == string(db.Postgres) {
		return restorePortable(ctx, c, t, m, r)
	}
	if t.DB.Dialect != db.SQLite {
		return fmt.Errorf("%s uses PostgreSQL and the backup is a SQLite file: move it with \"sergasctl copy\" instead (restore it to a SQLite file first)", t.Name)
	}
	if m.Dialect != string(db.SQLite) {
		return fmt.Errorf("the backup's dialect is %q, not sqlite", m.Dialect)
	}
	if m.File != filepath.Base(m.File) || !strings.HasSuffix(m.File, ".db.gz") {
		return fmt.Errorf("the manifest names an unexpected file %q", m.File)
	}
	dst, err := filepath.Abs(t.DB.SQLitePath)
	if err != nil {
		return err
	}
	ms, _, _, err := serviceMigrations(t.Name, t.DB.Dialect)
	if err != nil {
		return err
	}
	if m.SchemaVersion > len(ms) {
		return fmt.Errorf("the backup's schema version %d is newer than this binary's (%d): restore with the release that made it", m.SchemaVersion, len(ms))
	}
	// 1. The compressed file is the one the manifest describes.
	if err := checkBackupFile(m, r); err != nil {
		return err
	}
	// 2. Unpack next to the database (the same filesystem, so that the final rename is atomic).
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return unreachablef("database directory: %v", err)
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".restore.tmp")
	defer func() {
		for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
			os.Remove(f) // after a successful swap, nothing is left under these names
		}
	}()
	dbSum, err := unpack(r.Backup, tmp)
	if err != nil {
		return err
	}
	if dbSum != m.DBSHA256 {
		return fmt.Errorf("the database inside %s does not match its manifest's checksum", r.Backup)
	}
	r.Checks = append(r.Checks, "checksum of the database inside matches the manifest")
	// 3. The unpacked database: integrity, schema version, rows.
	var got manifest
	if err := describeCopy(ctx, tmp, t.Name, &got); err != nil {
		return err
	}
	if got.Integrity != "ok" {
		return fmt.Errorf("the backup fails integrity_check: %s", got.Integrity)
	}
	r.Checks = append(r.Checks, "integrity_check: ok")
	if got.SchemaVersion != m.SchemaVersion {
		return fmt.Errorf("the backup's schema version is %d, its manifest says %d", got.SchemaVersion, m.SchemaVersion)
	}
	r.Checks = append(r.Checks, fmt.Sprintf("schema version %d (this binary's newest: %d)", got.SchemaVersion, len(ms)))
	for tbl, n := range m.Tables {
		if got.Tables[tbl] != n {
			return fmt.Errorf("table %s has %d row(s), its manifest says %d", tbl, got.Tables[tbl], n)
		}
	}
	if len(got.Tables) != len(m.Tables) {
		return fmt.Errorf("the backup has %d table(s), its manifest names %d", len(got.Tables), len(m.Tables))
	}
	r.Checks = append(r.Checks, fmt.Sprintf("row counts of %d table(s) match the manifest", len(m.Tables)))
	// 4. Nobody may have the file open: a service would go on with its own view of the old file.
	if hs := fileHolders(dst); len(hs) > 0 {
		r.OpenBy = hs
		return fmt.Errorf("%s is open by %s: stop the services first", dst, describeHolders(hs))
	}
	if !confirmRestore(c, t, dst, m, r) {
		return nil
	}
	// WAL mode and a private WAL before the swap, so that the services open it as they left it.
	if err := walMode(ctx, tmp); err != nil {
		return err
	}
	// 5. Keep the current database (a hard link: the rename below then replaces the name only) and move
	// its WAL and index aside with it, since a WAL left beside the restored file would be replayed into it.
	if _, err := os.Stat(dst); err == nil {
		kept := dst + ".before-restore-" + time.Now().UTC().Format(stampLayout)
		if err := os.Link(dst, kept); err != nil {
			return fmt.Errorf("keep the current database: %w", err)
		}
		for _, side := range []string{"-wal", "-shm"} {
			if err := os.Rename(dst+side, kept+side); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("move the current %s aside: %w", side, err)
			}
		}
		r.KeptAs = kept
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("swap in the restored database: %w", err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if err := os.Rename(tmp+side, dst+side); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("move the restored %s: %w", side, err)
		}
	}
	r.Restored = true
	return syncDir(filepath.Dir(dst))
}

// unpack gunzips src into dst (0600) and returns the SHA-256 of what it wrote.
func unpack(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", unreachablef("open the backup: %v", err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return "", fmt.Errorf("the backup is not gzip: %w", err)
	}
	os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", unreachablef("create %s: %v", dst, err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), zr); err != nil {
		out.Close()
		return "", fmt.Errorf("unpack the backup: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// walMode switches the unpacked copy (VACUUM INTO writes rollback-journal files) to WAL, with its side
// files created private first, and checkpoints so that everything is in the main file.
func walMode(ctx context.Context, path string) error {
	if err := privateSideFiles(path); err != nil {
		return err
	}
	d, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path}).String())
	if err != nil {
		return err
	}
	defer d.Close()
	var mode string
	if err := d.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
		return fmt.Errorf("set WAL mode on the restored copy: %q %v", mode, err)
	}
	_, err = d.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// checkBackupFile checks that the backup file is the one its manifest describes (size and SHA-256).
func checkBackupFile(m *manifest, r *restoreResult) error {
	size, sum, err := hashFile(r.Backup)
	if err != nil {
		return unreachablef("read the backup: %v", err)
	}
	if sum != m.FileSHA256 || size != m.FileBytes {
		return fmt.Errorf("%s does not match its manifest's checksum: it is damaged or not this backup", r.Backup)
	}
	r.Checks = append(r.Checks, "checksum of "+filepath.Base(r.Backup)+" matches the manifest")
	return nil
}
