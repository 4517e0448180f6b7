package sergasctl

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/sergas/core/internal/db"
	auditsqlite "github.com/sergas/core/services/audit/store/sqlite"
)

func init() {
	register(&command{
		name:    "backup",
		summary: "online, consistent, compressed backup with a manifest (SQLite file, or PostgreSQL rows in the portable format); rotation",
		usage: `backup --out DIR [--service token|audit|webhook|all] [--json] [--keep-daily N] [--keep-weekly M]

For each selected service on SQLite, copies the database with VACUUM INTO while the services run: the
copy is one read transaction, so it holds every commit made before it started and none after, and
never takes the write lock (the services keep writing). The copy is checked (PRAGMA integrity_check),
counted, gzip-compressed and written into DIR as

  <service>-<UTC time, 20061231T235959Z>.db.gz
  <service>-<UTC time>.manifest.json   (service, schema version, rows per table, SHA-256 of both the
                                        .db.gz and the database inside it, audit chain head)

Both files are 0600 and appear only when complete (written under a temporary name, then renamed).
The copy needs free space in DIR for the whole database while it is compressed.

--keep-daily N keeps the newest backup of each of the N newest days that have one, --keep-weekly M
the newest of each of the M newest ISO weeks; any other backup of the service in DIR that this
command made (it has its manifest) is deleted. Without either flag nothing is deleted. Files this
command did not make are never touched.

On PostgreSQL, the rows of every table are read in one REPEATABLE READ snapshot while the services
write, in the portable format "copy" uses, into <service>-<time>.export.gz with the same manifest
(plus every table's checksum); the file is read back and checked before it counts. restore takes
it back into PostgreSQL or into SQLite.

Exits 0 when every backup is written and checked, 1 when one fails, 2 on a usage problem, 3 when a
database or DIR cannot be reached.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.out, "out", "", "the directory to write backups into (created 0700 when missing)")
			fs.IntVar(&o.keepDaily, "keep-daily", 0, "keep the newest backup of each of the N newest days; delete older ones this command made")
			fs.IntVar(&o.keepWeekly, "keep-weekly", 0, "keep the newest backup of each of the M newest ISO weeks")
		},
		run: runBackup,
	})
}

// manifestFormat names the manifest's layout, so that restore refuses one it does not know.
const manifestFormat = "sergasctl-backup/1"

// manifest describes one backup file; restore checks the backup against it.
type manifest struct {
	Format        string           `json:"format"`
	Service       string           `json:"service"`
	Dialect       string           `json:"dialect"`
	Source        string           `json:"source"`
	CreatedAt     time.Time        `json:"created_at"`
	SchemaVersion int              `json:"schema_version"`
	SQLiteVersion string           `json:"sqlite_version"`
	Tables        map[string]int64 `json:"tables"`
	File          string           `json:"file"`
	FileBytes     int64            `json:"file_bytes"`
	FileSHA256    string           `json:"file_sha256"`
	DBBytes       int64            `json:"database_bytes"`
	DBSHA256      string           `json:"database_sha256"`
	Integrity     string           `json:"integrity_check"`
	AuditHead     *auditHead       `json:"audit_head,omitempty"`
	Seconds       float64          `json:"seconds"`
	// Checksums are each table's storecopy checksum (PostgreSQL backups, which hold rows, not a file).
	Checksums map[string]string `json:"checksums,omitempty"`
}

type auditHead struct {
	Sequence int64  `json:"sequence"`
	Hash     string `json:"hash"`
}

// backupResult is what backup reports for one service.
type backupResult struct {
	Service  string    `json:"service"`
	Database string    `json:"database"`
	Error    string    `json:"error,omitempty"`
	Manifest *manifest `json:"manifest,omitempty"`
	Path     string    `json:"path,omitempty"`
	Deleted  []string  `json:"deleted"`
	code     int
}

const stampLayout = "20060102T150405Z"

func runBackup(ctx context.Context, c *cmdCtx) int {
	if c.opts.out == "" {
		return c.usageError("backup", "--out DIR is required")
	}
	if c.opts.keepDaily < 0 || c.opts.keepWeekly < 0 {
		return c.usageError("backup", "--keep-daily and --keep-weekly must not be negative")
	}
	if len(c.args) > 0 {
		return c.usageError("backup", "unexpected argument %q", c.args[0])
	}
	targets, err := loadTargets(c.env, c.opts.service)
	if err != nil {
		return c.configFail("backup", err)
	}
	out, err := filepath.Abs(c.opts.out)
	if err == nil {
		err = os.MkdirAll(out, 0o700)
	}
	if err != nil {
		return c.fail("backup", unreachablef("backup directory: %v", err))
	}
	var results []*backupResult
	code := ExitOK
	for _, t := range targets {
		r := &backupResult{Service: t.Name, Database: t.DB.Redacted(), Deleted: []string{}}
		if err := backupOne(ctx, c, t, out, r); err != nil {
			r.Error, r.code = err.Error(), max(exitFor(err), ExitFailed)
		} else if c.opts.keepDaily > 0 || c.opts.keepWeekly > 0 {
			if r.Deleted, err = rotate(out, t.Name, r.Manifest, c.opts.keepDaily, c.opts.keepWeekly); err != nil {
				r.Error, r.code = "rotation: "+err.Error(), ExitFailed
			}
		}
		results = append(results, r)
		code = combineExit(code, r.code)
	}
	if c.opts.json {
		_ = writeJSON(c.Stdout, map[string]any{"backups": results, "ok": code == ExitOK, "exit_code": code})
		return code
	}
	for _, r := range results {
		fmt.Fprintf(c.Stdout, "%-8s %s\n", r.Service, r.Database)
		if r.Error != "" {
			fmt.Fprintf(c.Stdout, "         FAILED: %s\n", r.Error)
			continue
		}
		m := r.Manifest
		if m.Dialect == string(db.Postgres) {
			fmt.Fprintf(c.Stdout, "         %s (%s, rows %s uncompressed) in %.1fs; schema version %d, %s\n",
				r.Path, bytes(m.FileBytes), bytes(m.DBBytes), m.Seconds, m.SchemaVersion, m.Integrity)
		} else {
			fmt.Fprintf(c.Stdout, "         %s (%s, database %s) in %.1fs; schema version %d, integrity_check %s\n",
				r.Path, bytes(m.FileBytes), bytes(m.DBBytes), m.Seconds, m.SchemaVersion, m.Integrity)
		}
		if m.AuditHead != nil {
			fmt.Fprintf(c.Stdout, "         audit chain head %d (hash %.16s…)\n", m.AuditHead.Sequence, m.AuditHead.Hash)
		}
		for _, d := range r.Deleted {
			fmt.Fprintf(c.Stdout, "         rotated out: %s\n", d)
		}
	}
	return code
}

func backupOne(ctx context.Context, c *cmdCtx, t *target, out string, r *backupResult) error {
	if t.DB.Dialect == db.Postgres {
		return backupPG(ctx, c, t, out, r)
	}
	start := time.Now()
	cn, err := openExisting(ctx, t)
	if err != nil {
		return err
	}
	defer cn.Close()
	now := start.UTC().Truncate(time.Second)
	base := t.Name + "-" + now.Format(stampLayout)
	gzPath := filepath.Join(out, base+".db.gz")
	manPath := filepath.Join(out, base+".manifest.json")
	if _, err := os.Stat(manPath); err == nil {
		return fmt.Errorf("%s exists already (two backups in one second): try again", manPath)
	}
	raw := filepath.Join(out, "."+base+".db.tmp")
	defer os.Remove(raw)
	// VACUUM INTO refuses a file with content and creates a missing one 0644: start from an empty
	// private file.
	os.Remove(raw)
	f, err := os.OpenFile(raw, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return unreachablef("create %s: %v", raw, err)
	}
	f.Close()
	// One read transaction: a consistent snapshot; writers go on meanwhile (WAL).
	if _, err := cn.SQL.ExecContext(ctx, "VACUUM INTO ?", raw); err != nil {
		return explainBusy(cn, "VACUUM INTO", err)
	}
	m := &manifest{Format: manifestFormat, Service: t.Name, Dialect: string(db.SQLite), Source: cn.SQLite.Path, CreatedAt: now, File: filepath.Base(gzPath)}
	if err := describeCopy(ctx, raw, t.Name, m); err != nil {
		return err
	}
	if m.Integrity != "ok" {
		return fmt.Errorf("the copy failed integrity_check (%s): the source may be damaged; run \"sergasctl health --full\"", m.Integrity)
	}
	if m.DBBytes, m.DBSHA256, err = hashFile(raw); err != nil {
		return err
	}
	if m.FileBytes, m.FileSHA256, err = compressTo(raw, gzPath); err != nil {
		return err
	}
	return finishBackup(start, manPath, gzPath, m, r)
}

// finishBackup writes the manifest of the backup file path (which is removed if that fails) and
// reports both.
func finishBackup(start time.Time, manPath, path string, m *manifest, r *backupResult) error {
	m.Seconds = time.Since(start).Seconds()
	if err := writeFileAtomic(manPath, m); err != nil {
		os.Remove(path)
		return err
	}
	r.Manifest, r.Path = m, path
	return nil
}

// describeCopy opens the copy read-only and fills the manifest: integrity, schema version, rows per
// table, audit head.
func describeCopy(ctx context.Context, path, service string, m *manifest) error {
	d, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}).String())
	if err != nil {
		return err
	}
	defer d.Close()
	d.SetMaxOpenConns(1)
	rows, err := d.QueryContext(ctx, "PRAGMA integrity_check(20)")
	if err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			rows.Close()
			return err
		}
		lines = append(lines, l)
	}
	rows.Close()
	if len(lines) == 1 {
		m.Integrity = lines[0]
	} else {
		m.Integrity = fmt.Sprintf("%d problem(s), first: %v", len(lines), lines)
	}
	if err := d.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&m.SQLiteVersion); err != nil {
		return err
	}
	if err := d.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&m.SchemaVersion); err != nil {
		return fmt.Errorf("read the copy's schema version: %w", err)
	}
	tables, err := copyTables(ctx, d)
	if err != nil {
		return err
	}
	m.Tables = map[string]int64{}
	for _, tbl := range tables {
		var n int64
		if err := d.QueryRowContext(ctx, `SELECT count(*) FROM "`+tbl+`"`).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", tbl, err)
		}
		m.Tables[tbl] = n
	}
	if service == "audit" {
		cs, err := auditsqlite.New(&db.SQLiteDB{Write: d, Read: d, Path: path}).ChainState(ctx)
		if err != nil {
			return fmt.Errorf("read the copy's audit chain head: %w", err)
		}
		m.AuditHead = &auditHead{Sequence: cs.HeadSeq, Hash: hex.EncodeToString(cs.HeadHash)}
	}
	return nil
}

// copyTables lists the tables of a SQLite file (not SQLite's own), by name; names with a double quote
// are left out, since they could not be quoted safely (the migrations make none).
func copyTables(ctx context.Context, d *sql.DB) ([]string, error) {
	rows, err := d.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND instr(name, '"') = 0 ORDER BY name LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// compressTo gzips src into dst (0600, complete or absent) and returns dst's size and SHA-256.
func compressTo(src, dst string) (int64, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, "", unreachablef("create %s: %v", tmp, err)
	}
	defer os.Remove(tmp) // after the rename, nothing is there to remove
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	zw, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed) // the level is valid
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return 0, "", fmt.Errorf("compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return 0, "", fmt.Errorf("compress: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return 0, "", err
	}
	if err := out.Close(); err != nil {
		return 0, "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return 0, "", err
	}
	return cw.n, hex.EncodeToString(h.Sum(nil)), syncDir(filepath.Dir(dst))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeFileAtomic writes v as JSON to path (0600) under a temporary name, then renames it.
func writeFileAtomic(path string, v any) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := writeJSON(f, v); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
