package sergasctl

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/sergas/core/internal/dbstats"
	auditstore "github.com/sergas/core/services/audit/store"
	tokenstore "github.com/sergas/core/services/token/store"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

func init() {
	register(&command{
		name:    "health",
		summary: "database size, free pages, integrity, WAL; audit chain head and checkpoint; webhook backlog; tokens needing re-authorisation (read-only)",
		usage: `health [--service token|audit|webhook|all] [--json] [--full]

Reads, for each selected service: the database size and free pages, PRAGMA quick_check (with --full
the slower integrity_check, which also checks every index against its table), the journal mode and the
WAL's size on SQLite; the database and schema size on PostgreSQL; the audit chain head and the newest
checkpoint; the webhook backlog by subscription and its oldest undelivered event; the token
connections that need re-authorisation. Everything is read through the services' own stores; no row
is written, and it is safe while the services run.

On SQLite it also runs a PASSIVE checkpoint (as the services do every 250 ms: it copies committed
pages from the WAL into the file, waits for nobody and blocks no writer) and names the processes whose
read transactions keep the WAL from being copied back (Linux), oldest first. Under "advice" it
explains, in plain words, a WAL that grows and a webhook backlog older than a minute (which
subscription, how old, whether a consumer takes its deliveries, the last error of a push endpoint) and
what to do about them; advice does not change the exit code.

Exits 0 when the integrity check passes, 1 when it finds a problem, 3 when a database cannot be
reached or opened.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.full, "full", false, "run PRAGMA integrity_check instead of quick_check (SQLite; reads every page and index)")
		},
		run: runHealth,
	})
}

// serviceHealth is what health reports for one service.
type serviceHealth struct {
	Service  string         `json:"service"`
	Database string         `json:"database"`
	Dialect  string         `json:"dialect"`
	Error    string         `json:"error,omitempty"` // the database could not be opened or read
	SQLite   *sqliteHealth  `json:"sqlite,omitempty"`
	Postgres *pgHealth      `json:"postgres,omitempty"`
	Token    *tokenHealth   `json:"token,omitempty"`
	Audit    *auditHealth   `json:"audit,omitempty"`
	Webhook  *webhookHealth `json:"webhook,omitempty"`
	// Problems are findings that fail the command (an integrity check that is not ok).
	Problems []string `json:"problems"`
	// Advice explains what needs an operator's attention without failing the command: a WAL that
	// cannot be copied back, an old webhook backlog; each says what holds it and what to do.
	Advice []string `json:"advice"`
	code   int
}

type sqliteHealth struct {
	FileBytes   int64  `json:"file_bytes"`
	PageSize    int64  `json:"page_size"`
	PageCount   int64  `json:"page_count"`
	FreePages   int64  `json:"free_pages"`
	FreeBytes   int64  `json:"free_bytes"`
	JournalMode string `json:"journal_mode"`
	WALBytes    int64  `json:"wal_bytes"`
	// Check is the pragma that ran (quick_check or integrity_check); Integrity its answer: "ok" or the
	// problems it found (at most 100).
	Check     string   `json:"integrity_check"`
	Integrity []string `json:"integrity"`
	// OpenBy are the other processes with the file or its WAL open (Linux): the services, and anyone
	// else who could hold its lock or keep the WAL from being checkpointed.
	OpenBy []holder `json:"open_by"`
	// WAL is set in WAL mode: whether it can be copied back, and the readers that hold it.
	WAL *walHealth `json:"wal,omitempty"`
}

type pgHealth struct {
	DatabaseBytes int64 `json:"database_bytes"`
	SchemaBytes   int64 `json:"schema_bytes"`
	Tables        int   `json:"tables"`
	LiveRows      int64 `json:"live_rows_estimate"`
	DeadRows      int64 `json:"dead_rows_estimate"`
}

type tokenHealth struct {
	Connections          int      `json:"connections"`
	NeedsReauthorization int      `json:"needs_reauthorization"`
	Reauthorize          []string `json:"needs_reauthorization_connections"` // provider/connection_id, the first 100
}

type auditHealth struct {
	HeadSequence   int64             `json:"head_sequence"`
	HeadHash       string            `json:"head_hash"`
	AnchorSequence int64             `json:"anchor_sequence"`
	LastCheckpoint *checkpointHealth `json:"last_checkpoint"`
}

type checkpointHealth struct {
	ID          int64     `json:"id"`
	Sequence    int64     `json:"sequence"`
	Time        time.Time `json:"time"`
	KeyID       string    `json:"key_id"`
	EventsSince int64     `json:"events_since"`
}

type webhookHealth struct {
	// Backlog counts events still to deliver (pending or failed), up to backlogCap.
	Backlog       int64             `json:"backlog_events"`
	BacklogCapped bool              `json:"backlog_capped"`
	DeadLetters   int64             `json:"dead_letter_deliveries"`
	Oldest        *time.Time        `json:"oldest_undelivered"`
	OldestAge     float64           `json:"oldest_undelivered_age_seconds"`
	Subscriptions []backlogOfHealth `json:"subscriptions"`
}

type backlogOfHealth struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Mode       string     `json:"mode"`  // pull or push
	State      string     `json:"state"` // active or paused
	Pending    int64      `json:"pending"`
	Leased     int64      `json:"leased"`
	Failed     int64      `json:"failed"`
	DeadLetter int64      `json:"dead_letter"`
	Oldest     *time.Time `json:"oldest_undelivered"`
	OldestAge  float64    `json:"oldest_undelivered_age_seconds"`
	// Set for a backlog older than backlogOld: the oldest delivery still owed (failed first, else
	// pending), its attempts, the consumer that last held one and the last error; and Advice, the
	// explanation also listed under the service's advice.
	Attempts     int32  `json:"oldest_attempts,omitempty"`
	LastConsumer string `json:"last_consumer,omitempty"`
	LastError    string `json:"last_error,omitempty"`
	Advice       string `json:"advice,omitempty"`
}

// longCheckBytes is the database size from which health warns that its integrity check takes time.
const longCheckBytes = 1 << 30

// backlogCap bounds the event backlog count (it reads one index entry per event).
const backlogCap = 1_000_000

// maxConnectionPages bounds the pages of connections health reads.
const maxConnectionPages = 1000

func runHealth(ctx context.Context, c *cmdCtx) int {
	targets, err := loadTargets(c.env, c.opts.service)
	if err != nil {
		return c.configFail("health", err)
	}
	return eachService(ctx, c, targets, healthOne, func(h *serviceHealth) int { return h.code }, printHealth)
}

func healthOne(ctx context.Context, c *cmdCtx, t *target) *serviceHealth {
	h := &serviceHealth{Service: t.Name, Database: t.DB.Redacted(), Dialect: string(t.DB.Dialect), Problems: []string{}, Advice: []string{}}
	cn, err := openExisting(ctx, t)
	if err != nil {
		h.Error, h.code = err.Error(), exitFor(err)
		return h
	}
	defer cn.Close()
	fail := func(err error) *serviceHealth {
		h.Error, h.code = err.Error(), exitFor(err)
		return h
	}
	if cn.SQLite != nil {
		if h.SQLite, err = sqliteFigures(ctx, c, cn); err != nil {
			return fail(err)
		}
		if len(h.SQLite.Integrity) != 1 || h.SQLite.Integrity[0] != "ok" {
			h.Problems = append(h.Problems, fmt.Sprintf("%s found %d problem(s): restore the newest backup whose check passes", h.SQLite.Check, len(h.SQLite.Integrity)))
			h.code = ExitFailed
		}
		h.Advice = append(h.Advice, walAdvice(h.SQLite)...)
	} else if h.Postgres, err = pgFigures(ctx, cn); err != nil {
		return fail(err)
	}
	switch t.Name {
	case "token":
		h.Token, err = tokenFigures(ctx, tokenStore(cn))
	case "audit":
		h.Audit, err = auditFigures(ctx, auditStore(cn))
	case "webhook":
		h.Webhook, err = webhookFigures(ctx, webhookStore(cn))
		if h.Webhook != nil {
			h.Advice = append(h.Advice, backlogAdvice(h.Webhook)...)
		}
	}
	if err != nil {
		return fail(err)
	}
	return h
}

func sqliteFigures(ctx context.Context, c *cmdCtx, cn *conn) (*sqliteHealth, error) {
	s := &sqliteHealth{Check: "quick_check", Integrity: []string{}}
	if c.opts.full {
		s.Check = "integrity_check"
	}
	q := cn.SQLite.Read
	f, err := dbstats.ReadSQLite(ctx, q, cn.SQLite.Path)
	if err != nil {
		return nil, err
	}
	s.FileBytes, s.PageSize, s.PageCount, s.FreePages, s.FreeBytes, s.JournalMode, s.WALBytes =
		f.FileBytes, f.PageSize, f.PageCount, f.FreePages, f.FreeBytes, f.JournalMode, f.WALBytes
	s.OpenBy = fileHolders(cn.SQLite.Path)
	if s.OpenBy == nil {
		s.OpenBy = []holder{}
	}
	if strings.EqualFold(s.JournalMode, "wal") {
		if s.WAL, err = walFigures(ctx, cn); err != nil {
			return nil, err
		}
	}
	if size := s.PageCount * s.PageSize; size >= longCheckBytes {
		// The check reads every page (integrity_check every index entry too) and says nothing until it
		// ends: tell the operator why the command is quiet, on stderr so that --json stays clean.
		fmt.Fprintf(c.Stderr, "%s: %s reads all %s of %s and prints nothing until it ends\n",
			cn.t.Name, s.Check, bytes(size), cn.SQLite.Path)
	}
	rows, err := q.QueryContext(ctx, "PRAGMA "+s.Check+"(100)")
	if err != nil {
		return nil, fmt.Errorf("PRAGMA %s: %w", s.Check, err)
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		s.Integrity = append(s.Integrity, line)
	}
	return s, rows.Err()
}

func pgFigures(ctx context.Context, cn *conn) (*pgHealth, error) {
	f, err := dbstats.ReadPostgres(ctx, cn.PG, true)
	if err != nil {
		return nil, err
	}
	return &pgHealth{DatabaseBytes: f.DatabaseBytes, SchemaBytes: f.SchemaBytes, Tables: f.Tables, LiveRows: f.LiveRows, DeadRows: f.DeadRows}, nil
}

func tokenFigures(ctx context.Context, st tokenstore.Store) (*tokenHealth, error) {
	c, err := dbstats.ReadConnections(ctx, st, maxConnectionPages)
	if err != nil {
		return nil, err
	}
	return &tokenHealth{Connections: c.Total, NeedsReauthorization: c.NeedsReauthorization, Reauthorize: c.Reauthorize}, nil
}

func auditFigures(ctx context.Context, st auditstore.Store) (*auditHealth, error) {
	c, err := dbstats.ReadChain(ctx, st)
	if err != nil {
		return nil, err
	}
	cs := c.State
	h := &auditHealth{HeadSequence: cs.HeadSeq, HeadHash: hex.EncodeToString(cs.HeadHash), AnchorSequence: cs.AnchorSeq}
	if cp := c.Last; cp != nil {
		h.LastCheckpoint = &checkpointHealth{ID: cp.ID, Sequence: cp.Sequence, Time: cp.Time, KeyID: cp.KeyID, EventsSince: cs.HeadSeq - cp.Sequence}
	}
	return h, nil
}

func webhookFigures(ctx context.Context, st webhookstore.Store) (*webhookHealth, error) {
	h := &webhookHealth{Subscriptions: []backlogOfHealth{}}
	if bc, ok := st.(webhookstore.BacklogCounter); ok {
		n, err := bc.EventBacklog(ctx, backlogCap)
		if err != nil {
			return nil, fmt.Errorf("count the backlog: %w", err)
		}
		h.Backlog, h.BacklogCapped = n, n >= backlogCap
	}
	bs, err := st.SubscriptionBacklogs(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the subscriptions' backlogs: %w", err)
	}
	subs := map[string]*webhookstore.Subscription{}
	after := ""
	for range maxConnectionPages { // bounded: every page moves forward or ends the loop
		page, err := st.SubscriptionList(ctx, webhookstore.SubscriptionListParams{AfterID: after, Limit: 500})
		if err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		for _, s := range page {
			subs[s.ID] = s
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	now := time.Now()
	explained := 0
	for _, b := range bs {
		o := backlogOfHealth{ID: b.SubscriptionID, Pending: b.Pending, Leased: b.Leased, Failed: b.Failed, DeadLetter: b.DeadLetter}
		sub := subs[b.SubscriptionID]
		if sub != nil {
			o.Name, o.Mode, o.State = sub.Name, modeName(sub.Mode), stateName(sub.State)
		}
		if !b.OldestUndelivered.IsZero() {
			t := b.OldestUndelivered
			o.Oldest, o.OldestAge = &t, now.Sub(t).Seconds()
			if h.Oldest == nil || t.Before(*h.Oldest) {
				h.Oldest = &t
			}
		}
		if sub != nil && (o.OldestAge >= backlogOld.Seconds() || b.DeadLetter > 0) && explained < maxExplained {
			explained++
			if err := explainBacklog(ctx, st, sub, &o); err != nil {
				return nil, err
			}
		}
		h.DeadLetters += b.DeadLetter
		h.Subscriptions = append(h.Subscriptions, o)
	}
	if h.Oldest != nil {
		h.OldestAge = now.Sub(*h.Oldest).Seconds()
	}
	return h, nil
}

// backlogAdvice is the explanation of every subscription whose backlog health explained.
func backlogAdvice(h *webhookHealth) []string {
	var out []string
	for _, s := range h.Subscriptions {
		if s.Advice != "" {
			out = append(out, s.Advice)
		}
	}
	return out
}

func printHealth(c *cmdCtx, h *serviceHealth) {
	w := c.Stdout
	fmt.Fprintf(w, "%-8s %s\n", h.Service, h.Database)
	line := func(format string, a ...any) { fmt.Fprintf(w, "         "+format+"\n", a...) }
	if h.Error != "" {
		line("ERROR %s", h.Error)
		return
	}
	if s := h.SQLite; s != nil {
		line("file %s, %d pages of %d bytes, %d free (%s); journal %s, WAL %s",
			bytes(s.FileBytes), s.PageCount, s.PageSize, s.FreePages, bytes(s.FreeBytes), s.JournalMode, bytes(s.WALBytes))
		line("%s: %s", s.Check, strings.Join(s.Integrity, "; "))
		line("open by %s", describeHolders(s.OpenBy))
		if wal := s.WAL; wal != nil {
			readers := "no other process reads from it"
			if !wal.ReadersKnown {
				readers = "its readers cannot be seen here (Linux /proc)"
			} else if r := wal.OldestReader; r != nil {
				readers = fmt.Sprintf("%d read transaction(s) of other processes use it, the oldest pid %d (%s) %s", len(wal.Readers), r.PID, r.Command, sinceFrame(r.SnapshotFrame))
			}
			line("WAL checkpoint (PASSIVE): %d of %d frame(s) in the database file; %s", wal.Checkpointed, wal.Frames, readers)
		}
	}
	if p := h.Postgres; p != nil {
		line("schema %s in %d table(s) (about %d live, %d dead rows); database %s", bytes(p.SchemaBytes), p.Tables, p.LiveRows, p.DeadRows, bytes(p.DatabaseBytes))
	}
	if t := h.Token; t != nil {
		line("%d connection(s), %d needing re-authorisation%s", t.Connections, t.NeedsReauthorization, list(t.Reauthorize))
	}
	if a := h.Audit; a != nil {
		hash := a.HeadHash
		if len(hash) > 16 {
			hash = hash[:16] + "…"
		}
		line("chain head %d (hash %s), retention anchor %d", a.HeadSequence, hash, a.AnchorSequence)
		if cp := a.LastCheckpoint; cp != nil {
			line("last checkpoint %d at sequence %d, %s, key %s; %d event(s) since", cp.ID, cp.Sequence, cp.Time.Format(time.RFC3339), cp.KeyID, cp.EventsSince)
		} else {
			line("no checkpoint yet")
		}
	}
	if wh := h.Webhook; wh != nil {
		capped := ""
		if wh.BacklogCapped {
			capped = " or more"
		}
		oldest := "none"
		if wh.Oldest != nil {
			oldest = fmt.Sprintf("%s (%s ago)", wh.Oldest.Format(time.RFC3339), time.Duration(wh.OldestAge*float64(time.Second)).Round(time.Second))
		}
		line("backlog %d event(s)%s to deliver, oldest undelivered %s; %d dead-lettered deliveries", wh.Backlog, capped, oldest, wh.DeadLetters)
		for _, s := range wh.Subscriptions {
			line("  subscription %s (%s): %d pending, %d leased, %d failed, %d dead letter", s.Name, s.ID, s.Pending, s.Leased, s.Failed, s.DeadLetter)
		}
	}
	for _, p := range h.Problems {
		line("PROBLEM %s", p)
	}
	for _, a := range h.Advice {
		line("ADVICE %s", a)
	}
}

func list(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ": " + strings.Join(ss, ", ")
}

// bytes formats n in binary units.
func bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
