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
	"strings"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/storecopy"
)

// restorePortable restores a backup in storecopy's portable format (what backup makes of a PostgreSQL
// service) into the service's configured database, PostgreSQL or SQLite, through the same staging and
// swap as copy: the staging database is made by the migrations of the backup's schema version, filled,
// every table's rows and checksum compared with the manifest, the audit chain verified and its head
// compared with the manifest's, the remaining migrations applied, and only then swapped in.
func restorePortable(ctx context.Context, c *cmdCtx, t *target, m *manifest, r *restoreResult) error {
	if m.File != filepath.Base(m.File) || !strings.HasSuffix(m.File, exportSuffix) {
		return fmt.Errorf("the manifest names an unexpected file %q", m.File)
	}
	ms, _, _, err := serviceMigrations(t.Name, t.DB.Dialect)
	if err != nil {
		return err
	}
	if m.SchemaVersion < 1 || m.SchemaVersion > len(ms) {
		return fmt.Errorf("the backup's schema version %d is not one this binary knows (1 to %d): restore with the release that made it", m.SchemaVersion, len(ms))
	}
	if err := checkBackupFile(m, r); err != nil {
		return err
	}
	if t.DB.Dialect == db.Postgres {
		warnServiceConnected(ctx, c, t)
	}
	st, err := prepareTarget(ctx, t, "restore", false)
	if err != nil {
		return err
	}
	defer st.abandon(ctx)
	if err := st.build(ctx, m.SchemaVersion); err != nil {
		return err
	}
	reports, rawSum, err := loadExport(ctx, c, r.Backup, t.Name, st.writer, m)
	if err != nil {
		return err
	}
	if rawSum != m.DBSHA256 {
		return fmt.Errorf("the rows inside %s do not match the manifest's checksum", r.Backup)
	}
	for _, rep := range reports {
		if m.Tables[rep.Table] != rep.Rows || m.Checksums[rep.Table] != rep.SHA256 {
			return fmt.Errorf("table %s: %d row(s) with checksum %.12s…, the manifest says %d and %.12s…", rep.Table, rep.Rows, rep.SHA256, m.Tables[rep.Table], m.Checksums[rep.Table])
		}
	}
	if len(reports) != len(m.Tables) {
		return fmt.Errorf("the backup holds %d table(s), its manifest names %d", len(reports), len(m.Tables))
	}
	r.Checks = append(r.Checks, fmt.Sprintf("row counts and checksums of %d table(s) match the manifest", len(reports)))
	if err := storecopy.Verify(ctx, copySpecs[t.Name], st.writer, reports); err != nil {
		return fmt.Errorf("the restored rows do not read back as written: %w", err)
	}
	r.Checks = append(r.Checks, "every table reads back from the staging database with the same checksum")
	st.releaseWriter()
	if t.Name == "audit" {
		if _, err := verifyChainOn(ctx, st.conn, m.AuditHead); err != nil {
			return err
		}
		r.Checks = append(r.Checks, "the audit chain verifies and its head is the manifest's")
	}
	r.Checks = append(r.Checks, fmt.Sprintf("schema version %d (this binary's newest: %d; the rest are applied before the swap)", m.SchemaVersion, len(ms)))
	if !confirmRestore(c, t, t.DB.Redacted(), m, r) {
		return nil
	}
	if r.KeptAs, err = st.swap(ctx); err != nil {
		return err
	}
	r.Restored = true
	return nil
}

// loadExport reads the export at path into w and returns the tables' reports and the SHA-256 of the
// uncompressed stream.
func loadExport(ctx context.Context, c *cmdCtx, path, service string, w storecopy.Writer, m *manifest) ([]storecopy.TableReport, string, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, "", unreachablef("open the backup: %v", err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return nil, "", fmt.Errorf("the backup is not gzip: %w", err)
	}
	h := sha256.New()
	fr, err := storecopy.NewFileReader(io.TeeReader(zr, h))
	if err != nil {
		return nil, "", err
	}
	if fr.Service != service {
		return nil, "", fmt.Errorf("the backup holds service %q, not %s", fr.Service, service)
	}
	var total int64
	for _, n := range m.Tables {
		total += n
	}
	bar := newProgress(c.Stderr, service+" restore", "rows", total)
	reports, err := storecopy.Copy(ctx, copySpecs[service], fr, w, storecopy.Options{OnRows: func(_ string, n int) { bar.Add(int64(n)) }})
	bar.Done()
	if err != nil {
		return nil, "", err
	}
	if _, err := io.Copy(h, zr); err != nil { // the rest of the stream (nothing, unless damaged)
		return nil, "", fmt.Errorf("read the backup: %w", err)
	}
	return reports, hex.EncodeToString(h.Sum(nil)), nil
}

// warnServiceConnected warns when sessions named as the service (application_name sergas-<service>) are
// connected to its PostgreSQL database: a running service would go on writing into the schema being
// replaced. PostgreSQL does not say which schema a session uses, so another installation in the same
// database looks the same: a warning, not a refusal.
func warnServiceConnected(ctx context.Context, cc *cmdCtx, t *target) {
	if err := serviceConnected(ctx, t); err != nil {
		fmt.Fprintf(cc.Stderr, "sergasctl: warning: %v\n", err)
	}
}

func serviceConnected(ctx context.Context, t *target) error {
	c, err := adminConn(ctx, t)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var pids []int32
	rows, err := c.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 ORDER BY pid", t.DB.AppName)
	if err != nil {
		return unreachablef("read pg_stat_activity: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p int32
		if err := rows.Scan(&p); err != nil {
			return err
		}
		pids = append(pids, p)
	}
	if len(pids) > 0 {
		return fmt.Errorf("sessions named %s are connected to the database (server pids %v): if %s is running, stop it first", t.DB.AppName, pids, t.Name)
	}
	return rows.Err()
}
