package sergasctl

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/token"
	tokenstore "github.com/sergas/core/services/token/store"
)

func init() {
	register(&command{
		name:    "import-legacy",
		summary: "move the original (Python) system's tokens, refresh log and audit events into Sergas Core",
		usage: `import-legacy --from sqlite:PATH|postgres://… [--dry-run] [--skip-bad] [--service token|audit|all] [--json]

Reads the original system's database, read only (SQLite: opened with mode=ro and query_only;
PostgreSQL: one READ ONLY, REPEATABLE READ transaction; add ?search_path=SCHEMA to the URL when its
tables are not in the default schema), and writes into the databases the token and audit services use
(found as every sergasctl command finds them; run "sergasctl setup" first):

  zoho_tokens          each row becomes the connection zoho/<token_type> (connection_id = token_type,
                       unchanged), its tokens sealed with the token service's keyring (TOKEN_ENCRYPTION_KEYS,
                       or the development key). expire, create and update times are kept; the status is
                       active, or needs re-authorisation when the access token has expired and there is no
                       refresh token. A connection that exists already is left as it is.
  token_refresh_audit  the connection's refresh history (success or failure; the message is reduced to
                       the token service's error class: invalid_grant, invalid_client or legacy).
  audit_events         appended to the audit chain in (timestamp, table order) order, each with its
                       event_id (a UUID; another id is replaced by a UUID derived from it, and kept in
                       metadata as legacy_event_id), action (event_type when action is empty), actor,
                       resource, session_id and metadata (the audit service's redaction applies), the
                       event_type in metadata as legacy_event_type, source_service "legacy", written by the
                       principal sergasctl:import-legacy with idempotency key legacy-import:<event id>.

Running it again imports nothing twice: connections that exist and events whose key is stored are
skipped. Rows that cannot be imported as they are (an unparseable time, invalid JSON metadata, NUL,
invalid UTF-8, a field over the services' limits) are listed with their source id, and the whole run is
refused before anything is written, unless --skip-bad imports the rest and counts what it skipped.
--dry-run reads and checks everything, counts what would be imported and writes nothing.

Exits 0 when everything was imported (or is present already), 1 when rows were refused or an event
conflicts with an earlier import, 2 on a usage or configuration problem, 3 when a database cannot be
reached.`,
		flags: func(fs *flag.FlagSet, o *options) {
			f := &legacyFlags{}
			fs.StringVar(&f.from, "from", "", "the original system's database: sqlite:PATH or a postgres:// URL")
			fs.BoolVar(&f.dryRun, "dry-run", false, "read, check and count; write nothing")
			fs.BoolVar(&f.skipBad, "skip-bad", false, "import the rows that can be imported and count the others, instead of refusing the run")
			o.cmd = f
		},
		run: runImportLegacy,
	})
}

type legacyFlags struct {
	from            string
	dryRun, skipBad bool
}

// legacyCount is what became of one legacy table. With --dry-run, Imported counts what would be.
type legacyCount struct {
	Read     int `json:"read"`
	Imported int `json:"imported"`
	Present  int `json:"already_present"`
	Bad      int `json:"bad"`
	// Orphaned: refresh rows whose token is not imported (absent, or a bad row).
	Orphaned  int `json:"orphaned,omitempty"`
	Conflicts int `json:"conflicts,omitempty"`
}

type legacyConnOut struct {
	LegacyID     string    `json:"legacy_id"`
	Provider     string    `json:"provider"`
	ConnectionID string    `json:"connection_id"`
	Status       string    `json:"status"`
	ExpireTime   time.Time `json:"expire_time"`
	History      int       `json:"refresh_events"`
	Result       string    `json:"result"` // imported, already_present (with --dry-run: would_import)
}

// legacyResult is import-legacy's report (--json prints it).
type legacyResult struct {
	Source        string          `json:"source"`
	DryRun        bool            `json:"dry_run"`
	SkipBad       bool            `json:"skip_bad"`
	MissingTables []string        `json:"missing_tables"`
	Connections   *legacyCount    `json:"connections,omitempty"`
	Refresh       *legacyCount    `json:"refresh_events,omitempty"`
	Audit         *legacyCount    `json:"audit_events,omitempty"`
	Conns         []legacyConnOut `json:"connection_list"`
	BadRows       []badRow        `json:"bad_rows"` // the first 100
	BadTotal      int             `json:"bad_rows_total"`
	Conflicts     []badRow        `json:"conflicts"` // events imported before with other content (the first 100)
	Error         string          `json:"error,omitempty"`
	OK            bool            `json:"ok"`
	ExitCode      int             `json:"exit_code"`
}

func runImportLegacy(ctx context.Context, c *cmdCtx) int {
	const name = "import-legacy"
	f := c.opts.cmd.(*legacyFlags)
	if len(c.args) > 0 {
		return c.usageError(name, "unexpected argument %q", c.args[0])
	}
	if f.from == "" {
		return c.usageError(name, "--from is required: sqlite:PATH or a postgres:// URL")
	}
	if c.opts.service == "webhook" {
		return c.usageError(name, "the original system has no webhook data: --service is token, audit or all")
	}
	dsn, err := parseLegacyFrom(f.from)
	if err != nil {
		return c.usageError(name, "%v", err)
	}
	doTokens, doAudit := c.opts.service != "audit", c.opts.service != "token"
	var tt, at *target
	for _, want := range []struct {
		on   bool
		name string
		dst  **target
	}{{doTokens, "token", &tt}, {doAudit, "audit", &at}} {
		if !want.on {
			continue
		}
		ts, err := loadTargets(c.env, want.name)
		if err != nil {
			return c.configFail(name, err)
		}
		*want.dst = ts[0]
	}
	if tt != nil && tt.Token.Providers[legacyProvider] == nil {
		return c.configFail(name, fmt.Errorf("the token service does not serve the provider %q (TOKEN_PROVIDERS): the imported connections would be unusable", legacyProvider))
	}

	r := &legacyResult{Source: dsn.redacted(), DryRun: f.dryRun, SkipBad: f.skipBad, MissingTables: []string{}, Conns: []legacyConnOut{}, BadRows: []badRow{}, Conflicts: []badRow{}}
	code := importLegacy(ctx, c, f, dsn, tt, at, r)
	r.OK, r.ExitCode = code == ExitOK, code
	if c.opts.json {
		_ = writeJSON(c.Stdout, r)
	} else {
		printLegacy(c, r)
	}
	return code
}

func importLegacy(ctx context.Context, c *cmdCtx, f *legacyFlags, dsn legacyDSN, tt, at *target, r *legacyResult) int {
	fail := func(err error) int {
		r.Error = err.Error()
		return max(exitFor(err), ExitFailed)
	}
	reading := newProgress(c.Stderr, "import-legacy: reading", "rows", 0)
	src, err := readLegacy(ctx, dsn, reading)
	reading.Done()
	if err != nil {
		return fail(err)
	}
	r.MissingTables = append(r.MissingTables, src.Missing...)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var redactKeys []string
	if at != nil {
		redactKeys = at.Audit.RedactKeys
	}
	plan := planLegacy(src, now, redactKeys)
	read := map[string]int{"zoho_tokens": len(src.Tokens), "token_refresh_audit": len(src.Refresh), "audit_events": len(src.Events)}
	src = nil // the plan holds what is written: let the raw rows go
	if tt == nil {
		plan.Conns, plan.Orphaned = nil, 0
		plan.Bad = onlyTables(plan.Bad, "audit_events")
	}
	if at == nil {
		plan.Events = nil
		plan.Bad = onlyTables(plan.Bad, "zoho_tokens", "token_refresh_audit")
	}
	r.BadTotal = len(plan.Bad)
	r.BadRows = append(r.BadRows, plan.Bad[:min(len(plan.Bad), legacyMaxBadList)]...)
	bad := map[string]int{}
	for _, b := range plan.Bad {
		bad[b.Table]++
	}
	if tt != nil {
		r.Connections = &legacyCount{Read: read["zoho_tokens"], Bad: bad["zoho_tokens"]}
		r.Refresh = &legacyCount{Read: read["token_refresh_audit"], Bad: bad["token_refresh_audit"], Orphaned: plan.Orphaned}
	}
	if at != nil {
		r.Audit = &legacyCount{Read: read["audit_events"], Bad: bad["audit_events"]}
	}
	if len(plan.Bad) > 0 && !f.skipBad {
		return fail(fmt.Errorf("%d legacy row(s) cannot be imported as they are (listed with their source id): nothing was written; correct them in the legacy database, or rerun with --skip-bad to import the others", len(plan.Bad)))
	}

	var tcn, acn *conn
	for _, o := range []struct {
		t  *target
		cn **conn
	}{{tt, &tcn}, {at, &acn}} {
		if o.t == nil {
			continue
		}
		cn, err := openCurrent(ctx, o.t)
		if err != nil {
			return fail(err)
		}
		defer cn.Close()
		*o.cn = cn
	}
	prog := newProgress(c.Stderr, "import-legacy", "rows", int64(len(plan.Conns)+len(plan.Events)))
	defer prog.Done()
	if tcn != nil {
		if err := importConns(ctx, tcn, f.dryRun, plan, r, prog); err != nil {
			return fail(err)
		}
	}
	if acn != nil {
		st := auditStore(acn)
		if f.dryRun {
			n, err := presentEvents(ctx, st, plan.Events)
			if err != nil {
				return fail(fmt.Errorf("audit: %w", err))
			}
			r.Audit.Present, r.Audit.Imported = n, len(plan.Events)-n
			prog.Add(int64(len(plan.Events)))
		} else {
			counts, err := appendLegacyEvents(ctx, st, plan.Events, prog)
			r.Audit.Imported, r.Audit.Present, r.Audit.Conflicts = counts.Imported, counts.Present, len(counts.Conflicts)
			r.Conflicts = append(r.Conflicts, counts.Conflicts[:min(len(counts.Conflicts), legacyMaxBadList)]...)
			if err != nil {
				return fail(fmt.Errorf("audit: %w (the events before it are imported; run the command again to import the rest)", err))
			}
			if len(counts.Conflicts) > 0 {
				return fail(fmt.Errorf("%d audit event(s) were imported before with other content; they are left as stored", len(counts.Conflicts)))
			}
		}
	}
	return ExitOK
}

// openCurrent opens a service database that setup made and checks that its schema is the binary's (the
// import writes the current tables).
func openCurrent(ctx context.Context, t *target) (*conn, error) {
	cn, err := openExisting(ctx, t)
	if err != nil {
		return nil, err
	}
	ms, downs, _, err := cn.migrations()
	if err == nil {
		var st *migrationStatus
		if st, err = readStatus(ctx, cn, ms, downs, nil); err == nil && st.State != "current" {
			err = fmt.Errorf("%s: schema version %d, this binary's is %d: run \"sergasctl migrate up\" first", t.Name, st.Version, st.Latest)
		}
	}
	if err != nil {
		cn.Close()
		return nil, err
	}
	return cn, nil
}

func importConns(ctx context.Context, cn *conn, dryRun bool, plan *legacyPlan, r *legacyResult, prog *progress) error {
	w := tokenWriter{cn: cn}
	var ring *keyring.Keyring
	if !dryRun { // in development loading may make the key file: a dry run writes nothing
		var err error
		if ring, err = token.LoadKeyring(*cn.t.Token); err != nil {
			return fmt.Errorf("token keyring: %w", err)
		}
	}
	for _, ic := range plan.Conns {
		out := legacyConnOut{LegacyID: ic.SourceID, Provider: ic.Conn.Provider, ConnectionID: ic.Conn.ConnectionID,
			Status: statusName(ic.Conn.Status), ExpireTime: ic.Conn.ExpireTime, History: len(ic.Events)}
		var inserted bool
		if dryRun {
			present, err := w.exists(ctx, ic)
			if err != nil {
				return fmt.Errorf("token: read %s/%s: %w", ic.Conn.Provider, ic.Conn.ConnectionID, err)
			}
			inserted = !present
		} else {
			if err := sealConn(ring, ic); err != nil {
				return fmt.Errorf("token: %w", err)
			}
			var err error
			if inserted, err = w.insert(ctx, ic); err != nil {
				return fmt.Errorf("token: %w (the connections before it are imported; run the command again to import the rest)", err)
			}
		}
		if inserted {
			out.Result = "imported"
			if dryRun {
				out.Result = "would_import"
			}
			r.Connections.Imported++
			r.Refresh.Imported += len(ic.Events)
		} else {
			out.Result = "already_present"
			r.Connections.Present++
			r.Refresh.Present += len(ic.Events)
		}
		r.Conns = append(r.Conns, out)
		prog.Add(1)
	}
	return nil
}

func statusName(s tokenstore.Status) string {
	if s == tokenstore.StatusNeedsReauthorization {
		return "needs_reauthorization"
	}
	return "active"
}

func onlyTables(bs []badRow, tables ...string) []badRow {
	var out []badRow
	for _, b := range bs {
		for _, t := range tables {
			if b.Table == t {
				out = append(out, b)
			}
		}
	}
	return out
}

func printLegacy(c *cmdCtx, r *legacyResult) {
	w := c.Stdout
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing written; \"imported\" counts what would be)"
	}
	fmt.Fprintf(w, "import-legacy from %s%s\n", r.Source, mode)
	for _, t := range r.MissingTables {
		fmt.Fprintf(w, "  table %s is absent: read as empty\n", t)
	}
	line := func(label string, n *legacyCount) {
		if n == nil {
			return
		}
		fmt.Fprintf(w, "  %-15s read %d, imported %d, already present %d, bad %d", label, n.Read, n.Imported, n.Present, n.Bad)
		if n.Orphaned > 0 {
			fmt.Fprintf(w, ", without an imported token %d", n.Orphaned)
		}
		if n.Conflicts > 0 {
			fmt.Fprintf(w, ", conflicting %d", n.Conflicts)
		}
		fmt.Fprintln(w)
	}
	line("connections", r.Connections)
	line("refresh history", r.Refresh)
	line("audit events", r.Audit)
	for _, cn := range r.Conns {
		fmt.Fprintf(w, "  %s/%s (legacy id %s): %s; %s, expires %s, %d refresh event(s)\n", cn.Provider, cn.ConnectionID, cn.LegacyID,
			cn.Result, cn.Status, cn.ExpireTime.Format(time.RFC3339), cn.History)
	}
	if r.BadTotal > 0 {
		what := "refused"
		if r.SkipBad {
			what = "skipped"
		}
		fmt.Fprintf(w, "  %d bad row(s) %s:\n", r.BadTotal, what)
	}
	for _, b := range r.BadRows {
		fmt.Fprintf(w, "    %s %s: %s\n", b.Table, b.ID, b.Problem)
	}
	if r.BadTotal > len(r.BadRows) {
		fmt.Fprintf(w, "    … and %d more\n", r.BadTotal-len(r.BadRows))
	}
	for _, b := range r.Conflicts {
		fmt.Fprintf(w, "  conflict: event %s %s\n", b.ID, b.Problem)
	}
	if r.Error != "" {
		fmt.Fprintf(c.Stderr, "sergasctl import-legacy: %s\n", r.Error)
	}
}
