package sergasctl_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver for the legacy PostgreSQL fixture
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/token"
	tokenstore "github.com/sergas/core/services/token/store"
	tokenpg "github.com/sergas/core/services/token/store/postgres"
	tokensqlite "github.com/sergas/core/services/token/store/sqlite"
)

// legacyDB is a database of the original Python system, made by the test.
type legacyDB struct {
	from string // the --from argument
	h    *sql.DB
	d    db.Dialect
	// text: the PostgreSQL tables hold times and metadata as text, as a schema made by hand may; SQLite
	// always does.
	text bool
}

// newLegacyDB makes the original system's three tables on d: on SQLite with the column types its ORM
// declared there (times as ISO-8601 text, success as 0/1, metadata as JSON text), on PostgreSQL with
// timestamptz, timestamp without time zone, boolean and jsonb, in a schema of its own reached with
// ?search_path=.
func newLegacyDB(t *testing.T, d db.Dialect, text bool) *legacyDB {
	t.Helper()
	l := legacyDB{d: d, text: text || d == db.SQLite}
	var ddl []string
	switch d {
	case db.SQLite:
		path := filepath.Join(t.TempDir(), "legacy.db")
		h, err := sql.Open("sqlite3", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		l.h, l.from = h, "sqlite:"+path
		ddl = []string{
			`CREATE TABLE zoho_tokens (id INTEGER PRIMARY KEY, token_type VARCHAR(50) NOT NULL UNIQUE, access_token TEXT NOT NULL,
				refresh_token TEXT, expires_at DATETIME, created_at DATETIME, updated_at DATETIME)`,
			`CREATE TABLE token_refresh_audit (id INTEGER PRIMARY KEY, token_id INTEGER, token_type VARCHAR(50), refreshed_at DATETIME,
				previous_expires_at DATETIME, new_expires_at DATETIME, success BOOLEAN, error_message TEXT)`,
			`CREATE TABLE audit_events (event_id VARCHAR(64) PRIMARY KEY, session_id VARCHAR(128), event_type VARCHAR(64),
				timestamp DATETIME, actor VARCHAR(256), action VARCHAR(128), resource VARCHAR(512), metadata JSON)`,
		}
	case db.Postgres:
		base := dbtest.PostgresURL(t)
		schema := dbtest.NewSchema(t, base)
		ctx := context.Background()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		u, _ := url.Parse(base)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		h, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		l.h, l.from = h, u.String()
		ddl = []string{
			`CREATE TABLE zoho_tokens (id serial PRIMARY KEY, token_type varchar(50) NOT NULL UNIQUE, access_token text NOT NULL,
				refresh_token text, expires_at timestamptz, created_at timestamp, updated_at timestamp)`,
			`CREATE TABLE token_refresh_audit (id serial PRIMARY KEY, token_id integer, token_type varchar(50), refreshed_at timestamptz,
				previous_expires_at timestamptz, new_expires_at timestamptz, success boolean, error_message text)`,
			`CREATE TABLE audit_events (event_id varchar(64) PRIMARY KEY, session_id varchar(128), event_type varchar(64),
				timestamp timestamptz, actor varchar(256), action varchar(128), resource varchar(512), metadata jsonb)`,
		}
		if text {
			ddl = []string{
				`CREATE TABLE zoho_tokens (id serial PRIMARY KEY, token_type text NOT NULL UNIQUE, access_token text NOT NULL,
					refresh_token text, expires_at text, created_at text, updated_at text)`,
				`CREATE TABLE token_refresh_audit (id serial PRIMARY KEY, token_id integer, token_type text, refreshed_at text,
					previous_expires_at text, new_expires_at text, success boolean, error_message text)`,
				`CREATE TABLE audit_events (event_id text PRIMARY KEY, session_id text, event_type text,
					timestamp text, actor text, action text, resource text, metadata text)`,
			}
		}
	}
	t.Cleanup(func() { l.h.Close() })
	for _, s := range ddl {
		l.exec(t, s)
	}
	return &l
}

func (l *legacyDB) exec(t *testing.T, stmt string, args ...any) {
	t.Helper()
	if l.d == db.Postgres {
		n := 0
		stmt = strings.NewReplacer("?", "$").Replace(stmt)
		var b strings.Builder
		for _, r := range stmt {
			if r == '$' {
				n++
				fmt.Fprintf(&b, "$%d", n)
				continue
			}
			b.WriteRune(r)
		}
		stmt = b.String()
	}
	if _, err := l.h.Exec(stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// The fixture's audit events, in table order; legacyOrder is the order they must be chained in: by time
// (offsets and naive-as-UTC taken into account), table order breaking the tie between e1 and e3.
const (
	e1 = "3f2c8a1e-5b7d-4e9f-8a6c-1d2e3f4a5b6c"
	e2 = "4a3b2c1d-6e5f-4a7b-9c8d-2e3f4a5b6c7d"
	e3 = "5B4C3D2E-7F6A-4B8C-8D9E-3F4A5B6C7D8E" // upper case: stored in the canonical lower case
	e4 = "evt-42"                               // not a UUID: a derived id, the original in metadata
)

// fillLegacy writes two tokens (one live with a refresh token, one expired without), their refresh log
// and four audit events. Times are text on SQLite (isoformat with and without offset, SQLite's space
// form) and typed values on PostgreSQL, the same instants.
func fillLegacy(t *testing.T, l *legacyDB, access string, expires time.Time) {
	t.Helper()
	ts := func(text string) any {
		if l.text {
			return text
		}
		if p, err := time.Parse("2006-01-02T15:04:05.999999Z07:00", text); err == nil {
			return p
		}
		p, err := time.Parse("2006-01-02T15:04:05.999999", strings.Replace(text, " ", "T", 1))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	l.exec(t, `INSERT INTO zoho_tokens (id, token_type, access_token, refresh_token, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		1, "crm", access, "rt-crm-1", ts(expires.Format("2006-01-02T15:04:05.999999-07:00")), ts("2024-03-01T10:00:00"), ts("2024-03-02 11:00:00.123456"))
	l.exec(t, `INSERT INTO zoho_tokens (id, token_type, access_token, refresh_token, expires_at, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?, ?)`,
		2, "desk", "at-desk", ts("2024-01-01T00:00:00Z"), ts("2023-12-31T23:00:00"), ts("2023-12-31T23:00:00"))
	success := func(b bool) any {
		if l.d == db.SQLite {
			if b {
				return 1
			}
			return 0
		}
		return b
	}
	l.exec(t, `INSERT INTO token_refresh_audit (id, token_id, token_type, refreshed_at, previous_expires_at, new_expires_at, success, error_message)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, 1, 1, "crm", ts("2024-03-02T11:00:00+00:00"), ts("2024-03-02T10:00:00+00:00"), ts("2024-03-02T12:00:00+00:00"), success(true), nil)
	l.exec(t, `INSERT INTO token_refresh_audit (id, token_id, token_type, refreshed_at, previous_expires_at, new_expires_at, success, error_message)
		VALUES (?, ?, ?, ?, ?, NULL, ?, ?)`, 2, 1, "crm", ts("2024-03-02T10:30:00Z"), ts("2024-03-02T10:00:00Z"), success(false), "invalid_grant: token revoked")
	ev := func(id, ts0, typ, action, meta string) {
		var m any = meta
		if meta == "" {
			m = nil
		}
		l.exec(t, `INSERT INTO audit_events (event_id, session_id, event_type, timestamp, actor, action, resource, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, "sess-1", typ, ts(ts0), "agent-7", action, "Deals/42", m)
	}
	ev(e1, "2024-03-01T10:00:05+02:00", "tool_call", "crm.deal.read", `{"fields": ["Amount"], "count": 3}`)
	ev(e2, "2024-03-01T09:00:00", "approval", "", "")
	ev(e3, "2024-03-01T08:00:05Z", "tool_call", "crm.deal.update", `{"changes": {"Stage": "Won"}}`)
	ev(e4, "2024-03-01 07:00:00", "session_start", "session.start", `{"password": "hunter2", "headers": [{"Authorization": "Bearer x"}], "note": "<ok & fine>"}`)
}

// legacyCountDoc is one table's counts in import-legacy's --json output.
type legacyCountDoc struct {
	Read, Imported, Bad, Orphaned, Conflicts int
	Present                                  int `json:"already_present"`
}

// legacyDoc is import-legacy's --json output.
type legacyDoc struct {
	DryRun        bool                                  `json:"dry_run"`
	Connections   legacyCountDoc                        `json:"connections"`
	RefreshEvents legacyCountDoc                        `json:"refresh_events"`
	AuditEvents   legacyCountDoc                        `json:"audit_events"`
	BadRows       []struct{ Table, ID, Problem string } `json:"bad_rows"`
	BadTotal      int                                   `json:"bad_rows_total"`
	Error         string
	OK            bool
}

func importLegacyJSON(t *testing.T, e env, want int, args ...string) legacyDoc {
	t.Helper()
	var doc legacyDoc
	mustRun(t, e, want, append([]string{"import-legacy", "--json"}, args...)...).decode(t, &doc)
	return doc
}

func tokenStoreOf(h *db.Handle) tokenstore.Store {
	if h.SQLite != nil {
		return tokensqlite.New(h.SQLite)
	}
	return tokenpg.New(h.Postgres)
}

// legacyState is what the targets hold: connections and the audit head.
func legacyState(t *testing.T, e env) (conns int, head int64) {
	t.Helper()
	ctx := context.Background()
	st, err := auditStoreOf(serviceDB(t, e, "audit")).ChainState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := tokenStoreOf(serviceDB(t, e, "token")).ConnectionList(ctx, tokenstore.ConnectionListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs), st.HeadSeq
}

// TestImportLegacy moves a legacy database made here, from SQLite and from PostgreSQL, into Sergas Core
// on SQLite and on PostgreSQL: --dry-run writes nothing; the import's token is served by the token
// service, its refresh log is the connection's history, the audit chain verifies with the audit
// service's verification and lists the events with their ids in time order; a second run imports
// nothing.
func TestImportLegacy(t *testing.T) {
	for _, src := range dbtest.Dialects {
		for _, dst := range dbtest.Dialects {
			t.Run(string(src)+"_to_"+string(dst), func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, dst)
				mustRun(t, e, 0, "setup")
				l := newLegacyDB(t, src, false)
				expires := time.Now().Add(time.Hour).Truncate(time.Microsecond)
				fillLegacy(t, l, "at-crm-1", expires)

				// --dry-run counts and writes nothing.
				dry := importLegacyJSON(t, e, 0, "--from", l.from, "--dry-run")
				if !dry.DryRun || dry.Connections.Imported != 2 || dry.RefreshEvents.Imported != 2 || dry.AuditEvents.Imported != 4 {
					t.Fatalf("dry run counts: %+v", dry)
				}
				if n, head := legacyState(t, e); n != 0 || head != 0 {
					t.Fatalf("after --dry-run: %d connections, audit head %d; want nothing written", n, head)
				}

				doc := importLegacyJSON(t, e, 0, "--from", l.from)
				if doc.Connections.Imported != 2 || doc.RefreshEvents.Imported != 2 || doc.AuditEvents.Imported != 4 || len(doc.BadRows) != 0 {
					t.Fatalf("import: %+v", doc)
				}

				// The token service, opened on the target as it starts, serves the imported token.
				svc, err := token.Open(ctx, token.LoadConfig(config.FromMap(e)), quietLog, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer svc.Close()
				at, err := svc.GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "crm"})
				if err != nil {
					t.Fatal(err)
				}
				if at.GetAccessToken() != "at-crm-1" || !at.GetExpireTime().AsTime().Equal(expires) {
					t.Errorf("served %q expiring %v, want at-crm-1 expiring %v", at.GetAccessToken(), at.GetExpireTime().AsTime(), expires)
				}
				crm, err := svc.GetConnection(ctx, &tokenv1.GetConnectionRequest{Provider: "zoho", ConnectionId: "crm"})
				if err != nil {
					t.Fatal(err)
				}
				c := crm.GetConnection()
				if !c.GetHasRefreshToken() || c.GetStatus() != tokenv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE ||
					!c.GetCreateTime().AsTime().Equal(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)) ||
					!c.GetUpdateTime().AsTime().Equal(time.Date(2024, 3, 2, 11, 0, 0, 123456000, time.UTC)) ||
					c.GetLastRefreshOutcome() != tokenv1.RefreshOutcome_REFRESH_OUTCOME_SUCCESS {
					t.Errorf("crm connection: %v", c)
				}
				hist, err := svc.ListRefreshEvents(ctx, &tokenv1.ListRefreshEventsRequest{Provider: "zoho", ConnectionId: "crm"})
				if err != nil {
					t.Fatal(err)
				}
				if evs := hist.GetEvents(); len(evs) != 2 ||
					evs[0].GetOutcome() != tokenv1.RefreshOutcome_REFRESH_OUTCOME_SUCCESS || !evs[0].GetTime().AsTime().Equal(time.Date(2024, 3, 2, 11, 0, 0, 0, time.UTC)) ||
					evs[1].GetOutcome() != tokenv1.RefreshOutcome_REFRESH_OUTCOME_FAILURE || evs[1].GetErrorClass() != "invalid_grant" {
					t.Errorf("crm history, newest first: %v", evs)
				}
				desk, err := svc.GetConnection(ctx, &tokenv1.GetConnectionRequest{Provider: "zoho", ConnectionId: "desk"})
				if err != nil {
					t.Fatal(err)
				}
				if s := desk.GetConnection().GetStatus(); s != tokenv1.ConnectionStatus_CONNECTION_STATUS_NEEDS_REAUTHORIZATION {
					t.Errorf("expired token without a refresh token: status %v, want needs re-authorisation", s)
				}

				// The audit service verifies the chain and lists the events, in time order, ids kept.
				as := audit.NewServer(auditStoreOf(serviceDB(t, e, "audit")), audit.DefaultLimits)
				v, err := as.VerifyChain(ctx, &auditv1.VerifyChainRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if !v.GetValid() || v.GetEventsChecked() != 4 {
					t.Fatalf("chain after import: %v", v)
				}
				list, err := as.ListEvents(ctx, &auditv1.ListEventsRequest{SourceService: "legacy"})
				if err != nil {
					t.Fatal(err)
				}
				var ids, actions []string
				for _, ev := range list.GetEvents() {
					ids = append(ids, ev.GetId())
					actions = append(actions, ev.GetAction())
				}
				if len(ids) != 4 || ids[1] != e1 || ids[2] != strings.ToLower(e3) || ids[3] != e2 {
					t.Fatalf("events in chain order: %v, want [derived(%s) %s %s %s]", ids, e4, e1, strings.ToLower(e3), e2)
				}
				if strings.Join(actions, ",") != "session.start,crm.deal.read,crm.deal.update,approval" {
					t.Errorf("actions: %v (an empty action takes the event type)", actions)
				}
				first := list.GetEvents()[0]
				md := first.GetMetadata().AsMap()
				if md["legacy_event_id"] != e4 || md["legacy_event_type"] != "session_start" || md["password"] != "[REDACTED]" || !first.GetRedacted() ||
					!first.GetOccurTime().AsTime().Equal(time.Date(2024, 3, 1, 7, 0, 0, 0, time.UTC)) || first.GetSessionId() != "sess-1" ||
					first.GetActor() != "agent-7" || first.GetResource() != "Deals/42" {
					t.Errorf("first event: %v", first)
				}
				if h := md["headers"].([]any)[0].(map[string]any)["Authorization"]; h != "[REDACTED]" {
					t.Errorf("a secret inside an array was stored: %v", h)
				}
				// The text as the audit service would have stored it (encoding/json: HTML characters escaped).
				if got, err := auditStoreOf(serviceDB(t, e, "audit")).EventGet(ctx, first.GetId()); err != nil || !strings.Contains(got.Metadata, `"note":"\u003cok \u0026 fine\u003e"`) {
					t.Errorf("stored metadata %q (%v)", got.Metadata, err)
				}

				// Again: nothing twice.
				again := importLegacyJSON(t, e, 0, "--from", l.from)
				if again.Connections.Imported != 0 || again.Connections.Present != 2 || again.AuditEvents.Imported != 0 || again.AuditEvents.Present != 4 {
					t.Errorf("second run: %+v", again)
				}
				if n, head := legacyState(t, e); n != 2 || head != 4 {
					t.Errorf("after the second run: %d connections, audit head %d; want 2 and 4", n, head)
				}
				if v, err := as.VerifyChain(ctx, &auditv1.VerifyChainRequest{}); err != nil || !v.GetValid() {
					t.Errorf("chain after the second run: %v %v", v, err)
				}
			})
		}
	}
}

// TestImportLegacyBadRows: rows that cannot be imported as they are (an unparseable time, a connection
// id the token service refuses, invalid JSON, NUL, invalid UTF-8, a field over the audit service's
// limit) are listed by source id and refuse the whole run before anything is written; --skip-bad
// imports the others and counts them. On PostgreSQL the legacy tables hold text (typed columns cannot
// hold such values; NUL and invalid UTF-8 cannot be stored in PostgreSQL text at all).
func TestImportLegacyBadRows(t *testing.T) {
	for _, src := range dbtest.Dialects {
		t.Run(string(src), func(t *testing.T) {
			e := newEnv(t, db.SQLite)
			mustRun(t, e, 0, "setup")
			l := newLegacyDB(t, src, true)
			fillLegacy(t, l, "at-crm-1", time.Now().Add(time.Hour))
			want := map[string]string{ // "table id" → a word of the problem
				"zoho_tokens 3":         "connection id",
				"zoho_tokens 4":         "expires_at",
				"token_refresh_audit 3": "refreshed_at",
				"audit_events e5":       "not valid JSON",
				"audit_events e8":       "action",
				"audit_events e9":       "NUL",
			}
			l.exec(t, `INSERT INTO zoho_tokens (id, token_type, access_token, expires_at) VALUES (3, 'has space', 'x', '2024-01-01T00:00:00')`)
			l.exec(t, `INSERT INTO zoho_tokens (id, token_type, access_token, expires_at) VALUES (4, 'books', 'x', 'tomorrow')`)
			l.exec(t, `INSERT INTO token_refresh_audit (id, token_id, token_type, refreshed_at, success) VALUES (3, 1, 'crm', '2024-13-45T00:00:00', TRUE)`)
			// A refresh row of the refused token: without its connection it has nowhere to go.
			l.exec(t, `INSERT INTO token_refresh_audit (id, token_id, token_type, refreshed_at, success) VALUES (4, 4, 'books', '2024-01-01T00:00:00', TRUE)`)
			bad := func(id, action, meta string) {
				l.exec(t, `INSERT INTO audit_events (event_id, event_type, timestamp, actor, action, metadata) VALUES (?, 'x', '2024-03-01T00:00:00', 'a', ?, ?)`, id, action, meta)
			}
			bad("e5", "ok", `{not json`)
			bad("e8", strings.Repeat("a", 129), `{}`)
			bad("e9", "ok", `{"k": "a\u0000b"}`)
			if src == db.SQLite {
				want["audit_events e6"], want["audit_events e7"] = "actor", "resource"
				l.exec(t, `INSERT INTO audit_events (event_id, timestamp, actor, action) VALUES ('e6', '2024-03-01T00:00:00', 'a' || char(0) || 'b', 'ok')`)
				l.exec(t, `INSERT INTO audit_events (event_id, timestamp, actor, action, resource) VALUES ('e7', '2024-03-01T00:00:00', 'a', 'ok', CAST(x'ff41' AS TEXT))`)
			}

			doc := importLegacyJSON(t, e, 1, "--from", l.from)
			if doc.BadTotal != len(want) || len(doc.BadRows) != len(want) || !strings.Contains(doc.Error, "nothing was written") {
				t.Fatalf("refused run: %+v", doc)
			}
			for _, b := range doc.BadRows {
				if w, ok := want[b.Table+" "+b.ID]; !ok || !strings.Contains(b.Problem, w) {
					t.Errorf("bad row %s %s: %q, want one of %v", b.Table, b.ID, b.Problem, want)
				}
			}
			if n, head := legacyState(t, e); n != 0 || head != 0 {
				t.Fatalf("after the refused run: %d connections, audit head %d; want nothing written", n, head)
			}
			// The text report names them too, and exits alike.
			r := run(t, e, "", "import-legacy", "--from", l.from)
			if r.code != 1 || !strings.Contains(r.stdout, "zoho_tokens 4: expires_at") || !strings.Contains(r.stderr, "--skip-bad") {
				t.Errorf("text report (exit %d):\n%s\n%s", r.code, r.stdout, r.stderr)
			}

			doc = importLegacyJSON(t, e, 0, "--from", l.from, "--skip-bad")
			if doc.Connections.Imported != 2 || doc.Connections.Bad != 2 || doc.RefreshEvents.Imported != 2 || doc.RefreshEvents.Bad != 1 ||
				doc.RefreshEvents.Orphaned != 1 || doc.AuditEvents.Imported != 4 || doc.AuditEvents.Bad != len(want)-3 || doc.BadTotal != len(want) {
				t.Fatalf("--skip-bad: %+v", doc)
			}
			if n, head := legacyState(t, e); n != 2 || head != 4 {
				t.Fatalf("after --skip-bad: %d connections, audit head %d; want 2 and 4", n, head)
			}
		})
	}
}

// TestImportLegacyMetadataAsTheServiceStoresIt: the import applies the audit service's metadata rules
// itself (they are unexported there), so the text it stores for an event's metadata must be exactly what
// the service's RecordEvent stores for the same metadata: canonical JSON and redaction at any depth.
func TestImportLegacyMetadataAsTheServiceStoresIt(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, db.SQLite)
	mustRun(t, e, 0, "setup", "--service", "audit")
	meta := `{"a": 1, "b": 1.5, "e": 1e3, "big": 12345678901234567890, "n": null, "s": "<&> é \u2028",
		"arr": [{"api_key": "k", "x": [1, {"Token": "t"}]}], "nested": {"db_password": "p", "input_tokens": 5}, "apiKey": "z", "ok": true}`
	l := newLegacyDB(t, db.SQLite, true)
	const id = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
	l.exec(t, `INSERT INTO audit_events (event_id, timestamp, actor, action, metadata) VALUES (?, '2024-03-01T00:00:00', 'a', 'x.y', ?)`, id, meta)
	mustRun(t, e, 0, "import-legacy", "--from", l.from, "--service", "audit")

	st := auditStoreOf(serviceDB(t, e, "audit"))
	var m map[string]any
	if err := json.Unmarshal([]byte(meta), &m); err != nil {
		t.Fatal(err)
	}
	pb, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := audit.NewServer(st, audit.DefaultLimits).RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "a", Action: "x.y",
		Outcome: auditv1.Outcome_OUTCOME_SUCCESS, Metadata: pb})
	if err != nil {
		t.Fatal(err)
	}
	byService, err := st.EventGet(ctx, rec.GetEvent().GetId())
	if err != nil {
		t.Fatal(err)
	}
	imported, err := st.EventGet(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if imported.Metadata != byService.Metadata {
		t.Errorf("imported metadata\n%s\nthe service stores\n%s", imported.Metadata, byService.Metadata)
	}
	if !strings.Contains(imported.Metadata, `"sergas.redacted":true`) || strings.Contains(imported.Metadata, `"t"`) {
		t.Errorf("not redacted: %s", imported.Metadata)
	}
}

// TestImportLegacyLeavesTheSourceAndExistingConnectionsAlone: the legacy SQLite file is the same, byte
// for byte, with no journal or WAL beside it; a connection Sergas Core already holds under the same id
// is not replaced; --service token imports tokens only.
func TestImportLegacyLeavesTheSourceAndExistingConnectionsAlone(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, db.SQLite)
	mustRun(t, e, 0, "setup")
	l := newLegacyDB(t, db.SQLite, true)
	fillLegacy(t, l, "at-crm-legacy", time.Now().Add(time.Hour))
	path := strings.TrimPrefix(l.from, "sqlite:")
	l.h.Close() // as the old system would be, stopped
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dirBefore := dirEntries(t, filepath.Dir(path))

	svc, err := token.Open(ctx, token.LoadConfig(config.FromMap(e)), quietLog, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "crm",
		AccessToken: "at-made-here", RefreshToken: "rt", ExpiresIn: durationpb.New(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	doc := importLegacyJSON(t, e, 0, "--from", l.from, "--service", "token")
	if doc.Connections.Imported != 1 || doc.Connections.Present != 1 || doc.RefreshEvents.Present != 2 {
		t.Errorf("import beside an existing connection: %+v", doc)
	}
	at, err := svc.GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "crm"})
	if err != nil || at.GetAccessToken() != "at-made-here" {
		t.Errorf("the existing connection serves %q (%v), want its own token", at.GetAccessToken(), err)
	}
	if _, head := legacyState(t, e); head != 0 {
		t.Errorf("--service token appended %d audit events", head)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) || !slices.Equal(dirBefore, dirEntries(t, filepath.Dir(path))) {
		t.Errorf("the legacy file or its directory changed: %v → %v", dirBefore, dirEntries(t, filepath.Dir(path)))
	}
}

// TestImportLegacyUsageAndExitCodes: a command line or configuration problem exits 2 before anything is
// read; a source or target that cannot be opened exits 3; a database without the legacy tables exits 1.
func TestImportLegacyUsageAndExitCodes(t *testing.T) {
	e := newEnv(t, db.SQLite)
	l := newLegacyDB(t, db.SQLite, true)
	mustRun(t, e, 2, "import-legacy")
	mustRun(t, e, 2, "import-legacy", "--from", "mysql://x")
	mustRun(t, e, 2, "import-legacy", "--from", l.from, "--service", "webhook")
	mustRun(t, e, 2, "import-legacy", "--from", l.from, "extra")
	mustRun(t, e.with("TOKEN_PROVIDERS", "other"), 2, "import-legacy", "--from", l.from)
	mustRun(t, e, 3, "import-legacy", "--from", "sqlite:"+filepath.Join(t.TempDir(), "absent.db"))
	// Before setup: the target databases do not exist, and are not made.
	doc := importLegacyJSON(t, e, 3, "--from", l.from)
	if !strings.Contains(doc.Error, "sergasctl setup") {
		t.Errorf("before setup: %+v", doc)
	}
	empty := filepath.Join(t.TempDir(), "other.db")
	h, err := sql.Open("sqlite3", "file:"+empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec("CREATE TABLE unrelated (x)"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	mustRun(t, e, 0, "setup")
	if doc := importLegacyJSON(t, e, 1, "--from", "sqlite:"+empty); !strings.Contains(doc.Error, "none of the tables") {
		t.Errorf("a database without the legacy tables: %+v", doc)
	}
	mustRun(t, e, 0, "import-legacy", "--help")
}

// TestImportLegacyChangedRowConflicts: a legacy event changed after it was imported is not imported a
// second time beside the first: the run names it as a conflict and exits 1, and the chain stands.
func TestImportLegacyChangedRowConflicts(t *testing.T) {
	e := newEnv(t, db.SQLite)
	mustRun(t, e, 0, "setup")
	l := newLegacyDB(t, db.SQLite, true)
	fillLegacy(t, l, "at-crm-1", time.Now().Add(time.Hour))
	mustRun(t, e, 0, "import-legacy", "--from", l.from)
	l.exec(t, `UPDATE audit_events SET metadata = '{"count": 4}' WHERE event_id = ?`, e1)
	var doc struct {
		AuditEvents legacyCountDoc                 `json:"audit_events"`
		Conflicts   []struct{ ID, Problem string } `json:"conflicts"`
	}
	mustRun(t, e, 1, "import-legacy", "--from", l.from, "--json").decode(t, &doc)
	if doc.AuditEvents.Conflicts != 1 || doc.AuditEvents.Present != 3 || doc.AuditEvents.Imported != 0 || len(doc.Conflicts) != 1 || doc.Conflicts[0].ID != e1 {
		t.Errorf("rerun after a change: %+v", doc)
	}
	if _, head := legacyState(t, e); head != 4 {
		t.Errorf("audit head %d after the conflicting rerun, want 4", head)
	}
}
