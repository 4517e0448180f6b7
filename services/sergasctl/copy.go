package sergasctl

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/internal/storecopy"
	auditstore "github.com/sergas/core/services/audit/store"
	tokenstore "github.com/sergas/core/services/token/store"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

func init() {
	register(&command{
		name:    "copy",
		summary: "copy the services' databases to another backend (SQLite → PostgreSQL and back), verified table by table",
		usage: `copy --to URL [--service token|audit|webhook|all] [--dry-run] [--backup DIR] [--force] [--json]

Copies each selected service's database, as the configuration finds it (the source), to URL (the
target): postgres://… (each service into its schema, <SERVICE>_DATABASE_SCHEMA) or sqlite://PATH
(files named as DATABASE_URL=sqlite://PATH names them: PATH with "-<service>" before the extension).
The services must be stopped: rows written after the copy starts are not in it.

The source is only read, in one snapshot. The target is built aside (schema <schema>_copying, or file
<file>.copying) by the binary's migrations; every table moves in key order (COPY on PostgreSQL, the
indexes built after the rows), every column as stored: ids, sealed bytes under the same keys, payloads,
statuses, attempt history, the audit chain and checkpoints; identity sequences continue after the
source's. Then each table is read back and its row count and checksum compared with the source's, and
the audit chain is verified on the copy. Only then does the copy replace the target, in one step. A
copy that fails or is killed leaves the target as it was, and running it again starts afresh.

A target that holds data is refused unless --force, which keeps it aside (schema
<schema>_before_copy_<time>, or file <file>.before-copy-<time>) rather than dropping it.

--dry-run reads the source, counts its rows and says what would happen; it writes nothing.
--backup DIR first backs up each source (as "sergasctl backup --out DIR" does) and stops if that fails.

Exits 0 when every copy is made and verified, 1 when one fails (the target is then unchanged), 2 on a
usage problem, 3 when a database cannot be reached.`,
		flags: func(fs *flag.FlagSet, o *options) {
			f := &copyFlags{}
			o.cmd = f
			fs.StringVar(&f.to, "to", "", "the target: postgres://… or sqlite://PATH (required)")
			fs.BoolVar(&f.dryRun, "dry-run", false, "count and plan; write nothing")
			fs.StringVar(&f.backup, "backup", "", "back up each source into this directory first")
			fs.BoolVar(&f.force, "force", false, "replace a target that holds data (it is kept aside, not dropped)")
		},
		run: runCopy,
	})
}

type copyFlags struct {
	to, backup    string
	dryRun, force bool
}

// copyResult is what copy reports for one service.
type copyResult struct {
	Service string `json:"service"`
	Source  string `json:"source"`
	Target  string `json:"target"`
	DryRun  bool   `json:"dry_run"`
	Error   string `json:"error,omitempty"`
	// Plan, for --dry-run: rows per table, and whether the target holds data.
	SourceRows    map[string]int64 `json:"source_rows,omitempty"`
	TargetHasData bool             `json:"target_has_data"`
	// Tables are the copied tables with their rows and checksums, equal on both sides.
	Tables        []storecopy.TableReport `json:"tables,omitempty"`
	Rows          int64                   `json:"rows"`
	Seconds       float64                 `json:"seconds"`
	RowsPerSecond float64                 `json:"rows_per_second"`
	AuditHead     *auditHead              `json:"audit_head,omitempty"`
	// KeptAside is where the target's previous data now is (with --force), Backup the source's backup.
	KeptAside string `json:"kept_aside,omitempty"`
	Backup    string `json:"backup,omitempty"`
	code      int
}

func runCopy(ctx context.Context, c *cmdCtx) int {
	f := c.opts.cmd.(*copyFlags)
	if f.to == "" {
		return c.usageError("copy", "--to URL is required (postgres://… or sqlite://PATH)")
	}
	if len(c.args) > 0 {
		return c.usageError("copy", "unexpected argument %q", c.args[0])
	}
	sources, err := loadTargets(c.env, c.opts.service)
	if err != nil {
		return c.configFail("copy", err)
	}
	dests, err := loadTargets(targetEnv(c.env, f.to), c.opts.service)
	if err != nil {
		return c.configFail("copy", fmt.Errorf("--to: %w", err))
	}
	for i, s := range sources {
		if sameDatabase(s, dests[i]) {
			return c.usageError("copy", "%s: the target is the source (%s)", s.Name, s.DB.Redacted())
		}
	}
	i := 0
	return eachService(ctx, c, sources, func(ctx context.Context, c *cmdCtx, src *target) *copyResult {
		dst := dests[i]
		i++
		r := &copyResult{Service: src.Name, Source: src.DB.Redacted(), Target: dst.DB.Redacted(), DryRun: f.dryRun}
		if err := copyOne(ctx, c, f, src, dst, r); err != nil {
			r.Error, r.code = err.Error(), max(exitFor(err), ExitFailed)
		}
		return r
	}, func(r *copyResult) int { return r.code }, printCopy)
}

// targetEnv is the configuration with DATABASE_URL replaced by to: loadTargets then finds the target
// databases exactly as the services would with that URL (file names, schemas, pool settings).
func targetEnv(env *config.Env, to string) *config.Env {
	return config.NewEnv(func(name string) (string, bool) {
		switch {
		case name == "DATABASE_URL":
			return to, true
		case strings.HasSuffix(name, "_DATABASE_URL"), strings.HasPrefix(name, "DATABASE_HOST"):
			return "", false // a per-service URL or the host form would take precedence
		}
		return env.Lookup(name)
	})
}

func sameDatabase(a, b *target) bool {
	if a.DB.Dialect != b.DB.Dialect {
		return false
	}
	if a.DB.SQLitePath != "" {
		return absPath(a.DB.SQLitePath) == absPath(b.DB.SQLitePath)
	}
	return a.DB.PostgresURL == b.DB.PostgresURL && a.DB.Schema == b.DB.Schema
}

// copySpecs are the stores' declarations of their tables.
var copySpecs = map[string]storecopy.Spec{
	"token":   tokenstore.CopySpec,
	"audit":   auditstore.CopySpec,
	"webhook": webhookstore.CopySpec,
}

func copyOne(ctx context.Context, c *cmdCtx, f *copyFlags, src, dst *target, r *copyResult) error {
	start := time.Now()
	spec := copySpecs[src.Name]
	cn, err := openExisting(ctx, src)
	if err != nil {
		return err
	}
	defer cn.Close()
	if err := sourceCurrent(ctx, cn); err != nil {
		return err
	}
	if r.SourceRows, err = countRows(ctx, cn, spec); err != nil {
		return fmt.Errorf("count the source's rows: %w", err)
	}
	stage, err := prepareTarget(ctx, dst, "copy", f.dryRun)
	if err != nil {
		return err
	}
	defer stage.abandon(ctx)
	r.TargetHasData = stage.hasData
	if stage.hasData && !f.force {
		return fmt.Errorf("the target %s holds data: copy refuses to replace it without --force (which keeps it aside)", dst.DB.Redacted())
	}
	if f.dryRun {
		return nil
	}
	if dst.DB.Dialect == db.Postgres && stage.exists {
		warnServiceConnected(ctx, c, dst)
	}
	if f.backup != "" {
		if r.Backup, err = backupBeforeCopy(ctx, c, src, f.backup); err != nil {
			return fmt.Errorf("--backup: %w", err)
		}
	}
	if err := stage.build(ctx, 0); err != nil {
		return err
	}
	var total int64
	for _, n := range r.SourceRows {
		total += n
	}
	bar := newProgress(c.Stderr, src.Name+" copy", "rows", total)
	reports, err := copyFrom(ctx, cn, spec, stage.writer, storecopy.Options{OnRows: func(_ string, n int) { bar.Add(int64(n)) }})
	bar.Done()
	if err != nil {
		return err
	}
	if err := storecopy.Verify(ctx, spec, stage.writer, reports); err != nil {
		return fmt.Errorf("the copy does not match its source (the target is unchanged): %w", err)
	}
	stage.releaseWriter()
	if src.Name == "audit" {
		if r.AuditHead, err = verifyCopiedChain(ctx, cn, stage.conn); err != nil {
			return err
		}
	}
	if r.KeptAside, err = stage.swap(ctx); err != nil {
		return err
	}
	for _, t := range reports {
		r.Rows += t.Rows
		t.Columns = nil // the report names tables, rows and checksums
		r.Tables = append(r.Tables, t)
	}
	r.Seconds = time.Since(start).Seconds()
	if r.Seconds > 0 {
		r.RowsPerSecond = float64(r.Rows) / r.Seconds
	}
	return nil
}

// sourceCurrent refuses a source whose schema is not this binary's newest: the target is made by the
// binary's migrations, so both must be at the same version.
func sourceCurrent(ctx context.Context, cn *conn) error {
	ms, _, dialect, err := cn.migrations()
	if err != nil {
		return err
	}
	v, err := migrate.Version(ctx, cn.SQL, dialect)
	if err != nil {
		return fmt.Errorf("read the source's schema version: %w", err)
	}
	if v != len(ms) {
		return fmt.Errorf("the source is at schema version %d and this binary's newest is %d: run \"sergasctl migrate up --service %s\" on it first (or use the matching release)", v, len(ms), cn.t.Name)
	}
	return nil
}

// countRows counts each table of spec on the source.
func countRows(ctx context.Context, cn *conn, spec storecopy.Spec) (map[string]int64, error) {
	out := map[string]int64{}
	q := cn.SQL
	if cn.SQLite != nil {
		q = cn.SQLite.Read
	}
	for _, t := range spec.Tables {
		var n int64
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM "`+t.Name+`"`).Scan(&n); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		out[t.Name] = n
	}
	return out, nil
}

// copyFrom reads the source in one snapshot and copies every table of spec into w.
func copyFrom(ctx context.Context, cn *conn, spec storecopy.Spec, w storecopy.Writer, o storecopy.Options) ([]storecopy.TableReport, error) {
	rd, end, err := snapshotReader(ctx, cn)
	if err != nil {
		return nil, fmt.Errorf("read the source: %w", err)
	}
	defer end()
	return storecopy.Copy(ctx, spec, rd, w, o)
}

// snapshotReader is a reader of the source that sees one moment of it; end releases it.
func snapshotReader(ctx context.Context, cn *conn) (storecopy.Reader, func(), error) {
	if cn.SQLite != nil {
		sc, err := cn.SQLite.Read.Conn(ctx)
		if err != nil {
			return nil, nil, err
		}
		r := storecopy.NewSQLite(sc)
		if err := r.BeginSnapshot(ctx); err != nil {
			sc.Close()
			return nil, nil, err
		}
		return r, func() { r.End(); sc.Close() }, nil
	}
	pc, err := cn.PG.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	r := storecopy.NewPostgres(pc.Conn(), cn.t.DB.Schema)
	if err := r.BeginSnapshot(ctx); err != nil {
		pc.Release()
		return nil, nil, err
	}
	return r, func() { r.End(context.WithoutCancel(ctx)); pc.Release() }, nil
}

// verifyCopiedChain verifies the audit chain on the copy and checks that its head is the source's.
func verifyCopiedChain(ctx context.Context, source, copied *conn) (*auditHead, error) {
	want, err := auditStore(source).ChainState(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the source's audit chain head: %w", err)
	}
	return verifyChainOn(ctx, copied, &auditHead{Sequence: want.HeadSeq, Hash: hex.EncodeToString(want.HeadHash)})
}

// verifyChainOn verifies the whole audit chain of cn, as the service's VerifyChain does, and checks
// that its head is want.
func verifyChainOn(ctx context.Context, cn *conn, want *auditHead) (*auditHead, error) {
	v, err := auditstore.Verify(ctx, auditStore(cn), auditstore.VerifyParams{})
	if err != nil {
		return nil, fmt.Errorf("verify the copied audit chain: %w", err)
	}
	if !v.Valid {
		return nil, fmt.Errorf("the copied audit chain does not verify (the target is unchanged): %s", v.Detail)
	}
	got := &auditHead{Sequence: v.HeadSeq, Hash: hex.EncodeToString(v.HeadHash)}
	if want != nil && *got != *want {
		return nil, errors.New("the copied audit chain's head differs from the source's (the target is unchanged)")
	}
	return got, nil
}

func printCopy(c *cmdCtx, r *copyResult) {
	fmt.Fprintf(c.Stdout, "%-8s %s -> %s\n", r.Service, r.Source, r.Target)
	if r.Backup != "" {
		fmt.Fprintf(c.Stdout, "         source backed up to %s\n", r.Backup)
	}
	if r.Error != "" {
		fmt.Fprintf(c.Stdout, "         FAILED: %s\n", r.Error)
		return
	}
	if r.DryRun {
		for _, t := range copySpecs[r.Service].Tables {
			fmt.Fprintf(c.Stdout, "         would copy %-18s %d row(s)\n", t.Name, r.SourceRows[t.Name])
		}
		if r.TargetHasData {
			fmt.Fprintf(c.Stdout, "         the target holds data: only --force would replace it (keeping it aside)\n")
		}
		fmt.Fprintf(c.Stdout, "         dry run: nothing written\n")
		return
	}
	for _, t := range r.Tables {
		fmt.Fprintf(c.Stdout, "         %-18s %d row(s), checksum %.16s… matches\n", t.Table, t.Rows, t.SHA256)
	}
	if r.AuditHead != nil {
		fmt.Fprintf(c.Stdout, "         audit chain verified on the target, head %d (hash %.16s…)\n", r.AuditHead.Sequence, r.AuditHead.Hash)
	}
	if r.KeptAside != "" {
		fmt.Fprintf(c.Stdout, "         the target's previous data is kept as %s\n", r.KeptAside)
	}
	fmt.Fprintf(c.Stdout, "         copied %d row(s) in %.1fs (%.0f rows/s)\n", r.Rows, r.Seconds, r.RowsPerSecond)
}

// backupBeforeCopy backs up the source as "sergasctl backup --out dir" does and returns the file.
func backupBeforeCopy(ctx context.Context, c *cmdCtx, src *target, dir string) (string, error) {
	out, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(out, 0o700)
	}
	if err != nil {
		return "", unreachablef("backup directory: %v", err)
	}
	r := &backupResult{Service: src.Name}
	if err := backupOne(ctx, c, src, out, r); err != nil {
		return "", err
	}
	return r.Path, nil
}
