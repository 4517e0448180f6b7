package sergasctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
)

// The original Python system's tables, as import-legacy reads them. Its rows are read once, inside one
// read-only transaction, so that the three tables come from the same moment even if the old system is
// still running.

// legacyToken is one zoho_tokens row.
type legacyToken struct {
	ID                            string
	TokenType                     string
	AccessToken, RefreshToken     string
	ExpiresAt, CreatedAt, Updated any // raw column values: text, or time.Time on PostgreSQL
}

// legacyRefresh is one token_refresh_audit row.
type legacyRefresh struct {
	ID, TokenID, TokenType         string
	RefreshedAt, PreviousAt, NewAt any
	Success                        any
	ErrorMessage                   string
}

// legacyEvent is one audit_events row; Position is its place in the table (rowid order on SQLite,
// physical order on PostgreSQL), which breaks ties between equal timestamps.
type legacyEvent struct {
	Position                          int
	EventID, SessionID, EventType     string
	Timestamp                         any
	Actor, Action, Resource, Metadata string
	MetadataNull                      bool
}

// legacySource is what was read from the legacy database.
type legacySource struct {
	Tokens   []legacyToken
	Refresh  []legacyRefresh
	Events   []legacyEvent
	Missing  []string // tables the database does not have (read as empty)
	Redacted string   // the source as it may be printed
}

// legacyDSN is a parsed --from.
type legacyDSN struct {
	dialect db.Dialect
	path    string // SQLite
	url     string // PostgreSQL
}

// parseLegacyFrom reads --from: sqlite:PATH (also sqlite://PATH) or a postgres:// / postgresql:// URL.
func parseLegacyFrom(from string) (legacyDSN, error) {
	switch {
	case strings.HasPrefix(from, "postgres://"), strings.HasPrefix(from, "postgresql://"):
		if _, err := pgx.ParseConfig(from); err != nil {
			return legacyDSN{}, errors.New("--from is not a valid PostgreSQL connection string") // the parse error may quote the password
		}
		return legacyDSN{dialect: db.Postgres, url: from}, nil
	case strings.HasPrefix(from, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(from, "sqlite:"), "//")
		if p == "" {
			return legacyDSN{}, errors.New("--from sqlite: needs the path of the legacy file, as in sqlite:/var/lib/app/tokens.db")
		}
		return legacyDSN{dialect: db.SQLite, path: p}, nil
	}
	return legacyDSN{}, errors.New("--from must be sqlite:PATH or a postgres:// URL")
}

// redacted is the source as it may be printed: PostgreSQL URLs without their password.
func (d legacyDSN) redacted() string {
	if d.dialect == db.SQLite {
		return "sqlite:" + d.path
	}
	u, err := url.Parse(d.url)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}

// openLegacy opens the source read only. SQLite: mode=ro (the file is never written, not even its
// journal) and query_only as a second guard. PostgreSQL: every read runs in a READ ONLY transaction.
func openLegacy(ctx context.Context, d legacyDSN) (*sql.DB, error) {
	var dbh *sql.DB
	var err error
	switch d.dialect {
	case db.SQLite:
		path, aerr := filepath.Abs(d.path)
		if aerr != nil {
			return nil, unreachablef("legacy file %s: %v", d.path, aerr)
		}
		if _, serr := os.Stat(path); serr != nil {
			return nil, unreachablef("legacy file %s: %v", path, serr)
		}
		q := url.Values{}
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(on)")
		q.Add("_pragma", "busy_timeout(5000)")
		dbh, err = sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
	case db.Postgres:
		dbh, err = sql.Open("pgx", d.url)
	}
	if err != nil {
		return nil, unreachablef("open %s: %v", d.redacted(), err)
	}
	dbh.SetMaxOpenConns(1)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := dbh.PingContext(pctx); err != nil {
		dbh.Close()
		return nil, unreachablef("open %s: %v", d.redacted(), err)
	}
	return dbh, nil
}

// readLegacy reads the three tables in one read-only transaction (REPEATABLE READ on PostgreSQL, so all
// three come from one snapshot; SQLite's read transaction is one snapshot already).
func readLegacy(ctx context.Context, d legacyDSN, prog *progress) (*legacySource, error) {
	h, err := openLegacy(ctx, d)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	opts := &sql.TxOptions{ReadOnly: true}
	if d.dialect == db.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := h.BeginTx(ctx, opts)
	if err != nil {
		return nil, unreachablef("begin a read-only transaction on %s: %v", d.redacted(), err)
	}
	defer tx.Rollback() //nolint:errcheck // read only: nothing to keep
	src := &legacySource{Redacted: d.redacted()}
	has := func(table string) (bool, error) {
		var n int
		q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
		if d.dialect == db.Postgres {
			q = `SELECT COUNT(*) FROM (SELECT to_regclass($1) AS t) r WHERE t IS NOT NULL`
		}
		err := tx.QueryRowContext(ctx, q, table).Scan(&n)
		return n > 0, err
	}
	found := 0
	for _, table := range []string{"zoho_tokens", "token_refresh_audit", "audit_events"} {
		ok, err := has(table)
		if err != nil {
			return nil, unreachablef("read %s: %v", d.redacted(), err)
		}
		if !ok {
			src.Missing = append(src.Missing, table)
			continue
		}
		found++
		if err := readLegacyTable(ctx, tx, d.dialect, table, src, prog); err != nil {
			return nil, fmt.Errorf("read legacy table %s: %w", table, err)
		}
	}
	if found == 0 {
		return nil, fmt.Errorf("%s holds none of the tables zoho_tokens, token_refresh_audit, audit_events: is it the original system's database? (on PostgreSQL, add ?search_path=SCHEMA when they live in another schema)", d.redacted())
	}
	return src, nil
}

func readLegacyTable(ctx context.Context, tx *sql.Tx, d db.Dialect, table string, src *legacySource, prog *progress) error {
	// Metadata may be json or jsonb on PostgreSQL: read its text. Order: the table's own order
	// (rowid, or ctid on PostgreSQL, which is insertion order for a table that is only appended to).
	pos, meta := "rowid", "metadata"
	if d == db.Postgres {
		pos, meta = "ctid", "metadata::text"
	}
	var q string
	switch table {
	case "zoho_tokens":
		q = `SELECT id, token_type, access_token, refresh_token, expires_at, created_at, updated_at FROM zoho_tokens ORDER BY id`
	case "token_refresh_audit":
		q = `SELECT id, token_id, token_type, refreshed_at, previous_expires_at, new_expires_at, success, error_message
			FROM token_refresh_audit ORDER BY id`
	case "audit_events":
		q = `SELECT event_id, session_id, event_type, timestamp, actor, action, resource, ` + meta + ` FROM audit_events ORDER BY ` + pos
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		prog.Add(1)
		switch table {
		case "zoho_tokens":
			var id, tt, at, rt any
			var r legacyToken
			if err := rows.Scan(&id, &tt, &at, &rt, &r.ExpiresAt, &r.CreatedAt, &r.Updated); err != nil {
				return err
			}
			r.ID, r.TokenType, r.AccessToken, r.RefreshToken = anyText(id), anyText(tt), anyText(at), anyText(rt)
			src.Tokens = append(src.Tokens, r)
		case "token_refresh_audit":
			var id, tid, tt, msg any
			var r legacyRefresh
			if err := rows.Scan(&id, &tid, &tt, &r.RefreshedAt, &r.PreviousAt, &r.NewAt, &r.Success, &msg); err != nil {
				return err
			}
			r.ID, r.TokenID, r.TokenType, r.ErrorMessage = anyText(id), anyText(tid), anyText(tt), anyText(msg)
			src.Refresh = append(src.Refresh, r)
		case "audit_events":
			var id, sid, et, actor, action, res, md any
			r := legacyEvent{Position: i}
			if err := rows.Scan(&id, &sid, &et, &r.Timestamp, &actor, &action, &res, &md); err != nil {
				return err
			}
			r.EventID, r.SessionID, r.EventType = anyText(id), anyText(sid), anyText(et)
			r.Actor, r.Action, r.Resource, r.Metadata, r.MetadataNull = anyText(actor), anyText(action), anyText(res), anyText(md), md == nil
			src.Events = append(src.Events, r)
		}
	}
	return rows.Err()
}

// anyText is a column value as text: NULL is "", numbers (ids) in decimal. Bytes are kept as they are,
// so that invalid UTF-8 stays visible to the checks.
func anyText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// legacyTime reads a legacy time: a time value (PostgreSQL timestamp or timestamptz; a timestamp
// without time zone is UTC), or ISO-8601 text as Python's datetime.isoformat() and SQLite's adapters
// write it ("T" or a space between date and time, 0-9 fraction digits, an offset or none, which
// means UTC). It is truncated to microseconds, as every time Sergas Core stores. null reports NULL.
func legacyTime(v any) (t time.Time, null bool, err error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, true, nil
	case time.Time:
		t = x
	case string, []byte:
		s := strings.TrimSpace(anyText(x))
		if s == "" {
			return time.Time{}, true, nil
		}
		if len(s) > 10 && s[10] == ' ' {
			s = s[:10] + "T" + s[11:]
		}
		var perr error
		for _, layout := range []string{"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02"} {
			if t, perr = time.Parse(layout, s); perr == nil {
				break
			}
		}
		if perr != nil {
			return time.Time{}, false, fmt.Errorf("%q is not an ISO-8601 time", truncate(s, 40))
		}
	default:
		return time.Time{}, false, fmt.Errorf("a %T, not a time", v)
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, false, fmt.Errorf("%s is out of range (1970 to 9999)", t.Format(time.RFC3339))
	}
	return t.UTC().Truncate(time.Microsecond), false, nil
}

// truncate shortens s for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
