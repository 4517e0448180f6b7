package sergasctl

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/internal/storecopy"
)

// The portable backup of a PostgreSQL service: the rows of every table of the store's CopySpec, read in
// one REPEATABLE READ snapshot (the services keep writing), written in storecopy's portable format
// (what copy moves), gzip-compressed, with the usual manifest, which adds each table's checksum. The
// written file is read back and checked against those checksums before the backup counts as made.

const exportSuffix = ".export.gz"

func backupPG(ctx context.Context, c *cmdCtx, t *target, out string, r *backupResult) error {
	start := time.Now()
	cn, err := openExisting(ctx, t)
	if err != nil {
		return err
	}
	defer cn.Close()
	now := start.UTC().Truncate(time.Second)
	base := t.Name + "-" + now.Format(stampLayout)
	path := filepath.Join(out, base+exportSuffix)
	manPath := filepath.Join(out, base+".manifest.json")
	if _, err := os.Stat(manPath); err == nil {
		return fmt.Errorf("%s exists already (two backups in one second): try again", manPath)
	}
	m := &manifest{Format: manifestFormat, Service: t.Name, Dialect: string(db.Postgres), Source: t.DB.Redacted(),
		CreatedAt: now, File: filepath.Base(path), Integrity: "checksums of every table verified on the written file"}
	if m.SchemaVersion, err = migrate.Version(ctx, cn.SQL, migrate.Postgres); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	if err := exportTo(ctx, c, cn, path, m); err != nil {
		return err
	}
	return finishBackup(start, manPath, path, m, r)
}

// exportTo writes cn's tables to path (0600, complete or absent) and fills m: rows, checksums, sizes,
// audit head.
func exportTo(ctx context.Context, c *cmdCtx, cn *conn, path string, m *manifest) error {
	spec := copySpecs[cn.t.Name]
	counts, err := countRows(ctx, cn, spec)
	if err != nil {
		return err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return unreachablef("create %s: %v", tmp, err)
	}
	defer os.Remove(tmp) // after the rename, nothing is there to remove
	defer f.Close()
	fileHash, rawHash := sha256.New(), sha256.New()
	fileCount := &countWriter{w: io.MultiWriter(f, fileHash)}
	zw, _ := gzip.NewWriterLevel(fileCount, gzip.BestSpeed) // the level is valid
	rawCount := &countWriter{w: io.MultiWriter(zw, rawHash)}
	fw, err := storecopy.NewFileWriter(rawCount, cn.t.Name)
	if err != nil {
		return err
	}
	bar := newProgress(c.Stderr, cn.t.Name+" backup", "rows", total)
	reports, err := copyFrom(ctx, cn, spec, fw, storecopy.Options{OnRows: func(_ string, n int) { bar.Add(int64(n)) },
		Observe: noteHead(&m.AuditHead)})
	bar.Done()
	if err != nil {
		return err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	// Read the written file back: every table's rows against its trailer and the source's checksum.
	if err := checkExport(ctx, tmp, spec, reports); err != nil {
		return fmt.Errorf("the written backup does not read back: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	m.Tables, m.Checksums = map[string]int64{}, map[string]string{}
	for _, rep := range reports {
		m.Tables[rep.Table], m.Checksums[rep.Table] = rep.Rows, rep.SHA256
	}
	m.FileBytes, m.FileSHA256 = fileCount.n, hex.EncodeToString(fileHash.Sum(nil))
	m.DBBytes, m.DBSHA256 = rawCount.n, hex.EncodeToString(rawHash.Sum(nil))
	return nil
}

// checkExport reads the export at path and compares every table with reports.
func checkExport(ctx context.Context, path string, spec storecopy.Spec, reports []storecopy.TableReport) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return err
	}
	fr, err := storecopy.NewFileReader(zr)
	if err != nil {
		return err
	}
	return storecopy.Verify(ctx, spec, fr, reports)
}

// noteHead returns an Observe function that records the audit chain head seen in chain_head's row, so
// that the manifest names the head of the snapshot the backup holds.
func noteHead(head **auditHead) func(storecopy.Table, []storecopy.Column, []any) {
	return func(t storecopy.Table, cols []storecopy.Column, row []any) {
		if t.Name != "chain_head" {
			return
		}
		h := &auditHead{}
		for i, c := range cols {
			switch c.Name {
			case "sequence":
				h.Sequence, _ = row[i].(int64)
			case "hash":
				b, _ := row[i].([]byte)
				h.Hash = hex.EncodeToString(b)
			}
		}
		*head = h
	}
}
