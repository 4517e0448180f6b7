package sergasctl_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/proctest"
	auditstore "github.com/sergas/core/services/audit/store"
	auditpg "github.com/sergas/core/services/audit/store/postgres"
	auditsqlite "github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/sergasctl"
)

// benchDoc is bench's --json output.
type benchDoc struct {
	Machine struct {
		OS, CPU string
		CPUs    int
	}
	Backends []struct {
		Backend, Version, Settings string
		Scratch                    []string
		Populated                  struct {
			AuditEvents   int `json:"audit_events"`
			WebhookEvents int `json:"webhook_events"`
		}
	}
	Results []struct {
		Key, Operation, Backend string
		Count                   int
		MinMS                   float64                            `json:"min_ms"`
		MaxMS                   float64                            `json:"max_ms"`
		OriginalMS              float64                            `json:"original_ms"`
		P50                     struct{ Median, Min, Max float64 } `json:"p50_ms"`
		P99                     struct{ Median, Min, Max float64 } `json:"p99_ms"`
		RowsPerCall             float64                            `json:"rows_per_call"`
		Runs                    []struct{ Count int }
	}
	Worst    string
	OK       bool
	ExitCode int `json:"exit_code"`
}

// benchOriginal is the original guide's table: ms by operation key and backend.
var benchOriginal = map[string]map[string]float64{
	"simple_select":    {"sqlite": 0.08, "postgres": 0.12},
	"token_lookup":     {"sqlite": 0.15, "postgres": 0.23},
	"audit_insert":     {"sqlite": 0.45, "postgres": 0.38},
	"webhook_batch_10": {"sqlite": 8.2, "postgres": 2.3},
	"complex_query":    {"sqlite": 1.2, "postgres": 0.9},
}

// installation is what a bench must leave as it found: the services' row counts per table, the data
// directory's entries and the bench schemas in the test server.
type installation struct {
	rows    map[string]int64
	entries []string
	schemas []string
}

func snapshot(t *testing.T, e env, hs map[string]*db.Handle) installation {
	t.Helper()
	in := installation{rows: map[string]int64{}, entries: dirEntries(t, e["DATA_DIR"])}
	for service, h := range hs {
		for table, n := range tableRows(t, h) {
			in.rows[service+"."+table] = n
		}
	}
	if url, ok := e["DATABASE_URL"]; ok {
		in.schemas = benchSchemas(t, url)
	}
	return in
}

// tableRows counts the rows of every table of a service's database.
func tableRows(t *testing.T, h *db.Handle) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	sqldb := h.SQL()
	if h.Postgres != nil {
		defer sqldb.Close()
	}
	list := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	if h.Postgres != nil {
		list = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	}
	names := queryStrings(t, sqldb, list)
	if len(names) < 3 {
		t.Fatalf("only %d tables: %v", len(names), names)
	}
	out := map[string]int64{}
	for _, n := range names {
		var c int64
		if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM "`+n+`"`).Scan(&c); err != nil {
			t.Fatal(err)
		}
		out[n] = c
	}
	return out
}

func queryStrings(t *testing.T, q *sql.DB, stmt string, args ...any) []string {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), stmt, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// benchSchemas lists the schemas whose names bench uses.
func benchSchemas(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sergasctl\\_bench\\_%' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// benchInstallation is a set-up installation on d with one audit event, its databases open.
func benchInstallation(t *testing.T, d db.Dialect) (env, map[string]*db.Handle) {
	t.Helper()
	e := newEnv(t, d)
	mustRun(t, e, 0, "setup")
	hs := map[string]*db.Handle{}
	for _, s := range []string{"token", "audit", "webhook"} {
		hs[s] = serviceDB(t, e, s)
	}
	var log auditstore.Store
	if d == db.SQLite {
		log = auditsqlite.New(hs["audit"].SQLite)
	} else {
		log = auditpg.New(hs["audit"].Postgres)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if _, _, err := log.EventAppend(context.Background(), &auditstore.Event{ID: uuid.Must(uuid.NewV7()).String(), OccurTime: now, RecordTime: now,
		Actor: "operator", Action: "login", Resource: "console", Outcome: 1, Metadata: "{}", Principal: "test"}); err != nil {
		t.Fatal(err)
	}
	return e, hs
}

func (in installation) same(t *testing.T, after installation) {
	t.Helper()
	if !slices.Equal(in.entries, after.entries) {
		t.Errorf("data directory: before %v, after %v", in.entries, after.entries)
	}
	if !slices.Equal(in.schemas, after.schemas) {
		t.Errorf("bench schemas: before %v, after %v", in.schemas, after.schemas)
	}
	if len(in.rows) != len(after.rows) {
		t.Errorf("tables: before %v, after %v", in.rows, after.rows)
	}
	for k, n := range in.rows {
		if after.rows[k] != n {
			t.Errorf("%s: %d rows before, %d after", k, n, after.rows[k])
		}
	}
	if in.rows["audit.events"] != 1 {
		t.Errorf("the installation's audit events: %d, want the 1 the test stored", in.rows["audit.events"])
	}
}

// TestBench runs a small bench on each backend (on PostgreSQL --backend both, the SQLite scratch files
// in DATA_DIR): every row of the original table is measured with sane figures beside the original's,
// no scratch file or schema is left, and the services' databases keep their rows.
func TestBench(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e, hs := benchInstallation(t, d)
		before := snapshot(t, e, hs)
		args := []string{"bench", "-n", "20", "--runs", "2", "--rows", "5000", "--json"}
		want := []string{"sqlite"}
		if d == db.Postgres {
			args = append(args, "--backend", "both")
			want = []string{"postgres", "sqlite"}
		}
		var doc benchDoc
		r := mustRun(t, e, 0, args...)
		r.decode(t, &doc)
		if !doc.OK || doc.Worst == "" || doc.Machine.CPUs < 1 || doc.Machine.OS == "" {
			t.Errorf("doc: %+v", doc)
		}
		if !strings.Contains(r.stderr, "populating") {
			t.Errorf("no progress on stderr:\n%s", r.stderr)
		}
		var backends []string
		for _, b := range doc.Backends {
			backends = append(backends, b.Backend)
			if b.Version == "" || b.Settings == "" || len(b.Scratch) != 3 || b.Populated.AuditEvents != 5000 || b.Populated.WebhookEvents != 5000 {
				t.Errorf("backend %+v", b)
			}
			for _, s := range b.Scratch {
				if !strings.Contains(s, "sergasctl_bench_") {
					t.Errorf("scratch %q", s)
				}
			}
		}
		if !slices.Equal(backends, want) {
			t.Fatalf("backends %v, want %v", backends, want)
		}
		if len(doc.Results) != 5*len(want) {
			t.Fatalf("%d results, want %d", len(doc.Results), 5*len(want))
		}
		seen := map[string]bool{}
		prev := 1e18
		for _, x := range doc.Results {
			seen[x.Key+"/"+x.Backend] = true
			if x.OriginalMS != benchOriginal[x.Key][x.Backend] {
				t.Errorf("%s %s: original %v, want %v", x.Key, x.Backend, x.OriginalMS, benchOriginal[x.Key][x.Backend])
			}
			if x.Count != 40 || len(x.Runs) != 2 {
				t.Errorf("%s %s: %d calls in %d runs, want 40 in 2", x.Key, x.Backend, x.Count, len(x.Runs))
			}
			if !(x.MinMS > 0 && x.MinMS <= x.P50.Min && x.P50.Min <= x.P50.Median && x.P50.Median <= x.P50.Max &&
				x.P50.Median <= x.P99.Median && x.P99.Max <= x.MaxMS && x.MaxMS < 30_000) {
				t.Errorf("%s %s: figures out of order: %+v", x.Key, x.Backend, x)
			}
			// The complex query must find events: its filters match about 7 of the 5000 events a call
			// (events spread over 30 days, 7 of them asked for, 20 actors × 8 actions), so an empty page
			// on average means the populated times or filters are wrong (times past 3,500 rows once overflowed
			// into the past).
			wantRows := map[string]float64{"simple_select": 1, "token_lookup": 1, "audit_insert": 1, "webhook_batch_10": 10}
			if w, ok := wantRows[x.Key]; ok && x.RowsPerCall != w {
				t.Errorf("%s %s: %.2f rows a call, want %v", x.Key, x.Backend, x.RowsPerCall, w)
			}
			if x.Key == "complex_query" && x.RowsPerCall < 1 {
				t.Errorf("complex query on %s: %.2f rows a call: its filters find (almost) nothing", x.Backend, x.RowsPerCall)
			}
			ratio := x.P50.Median / x.OriginalMS
			if ratio > prev*1.000001 {
				t.Errorf("%s %s: not ordered worst first (p50/original %.3f after %.3f)", x.Key, x.Backend, ratio, prev)
			}
			prev = ratio
		}
		for key := range benchOriginal {
			for _, b := range want {
				if !seen[key+"/"+b] {
					t.Errorf("no %s row on %s", key, b)
				}
			}
		}
		before.same(t, snapshot(t, e, hs))

		// The text table names every operation, its original figure and the machine.
		r = mustRun(t, e, 0, "bench", "-n", "3", "--runs", "1", "--rows", "100", "--backend", string(d))
		for _, s := range []string{"machine: ", "simple select", "token lookup", "audit insert", "webhook batch of 10", "complex query",
			"worst against the original", "What each operation is here"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("text output lacks %q:\n%s", s, r.stdout)
			}
		}
		before.same(t, snapshot(t, e, hs))
	})
}

// cancelOn is a writer that cancels a context when what it is given contains word.
type cancelOn struct {
	mu     sync.Mutex
	word   string
	cancel context.CancelFunc
	buf    strings.Builder
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.word) {
		w.cancel()
	}
	return len(p), nil
}

// TestBenchInterrupted cancels bench (as Ctrl-C does) once it has made its scratch databases and
// starts to fill them: it fails, and leaves no scratch file or schema behind.
func TestBenchInterrupted(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e, hs := benchInstallation(t, d)
		before := snapshot(t, e, hs)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		stderr := &cancelOn{word: "populating", cancel: cancel}
		code := sergasctl.Run(ctx, []string{"bench", "--backend", string(d), "--rows", "100000", "-n", "10"}, config.FromMap(e),
			sergasctl.IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: stderr})
		if code == 0 {
			t.Fatalf("an interrupted bench exited 0:\n%s", stderr.buf.String())
		}
		if !strings.Contains(stderr.buf.String(), "context canceled") {
			t.Errorf("stderr does not say why it stopped:\n%s", stderr.buf.String())
		}
		if d == db.Postgres {
			if s := benchSchemas(t, dbtest.PostgresURL(t)); len(s) != len(before.schemas) {
				t.Errorf("schemas left: %v", s)
			}
		}
		before.same(t, snapshot(t, e, hs))
	})
}

// TestBenchRefusals: bad flags and a PostgreSQL side nobody configured are usage errors (exit 2), a
// data directory that does not exist is unreachable (exit 3) and is not made; nothing is created.
func TestBenchRefusals(t *testing.T) {
	dir := t.TempDir()
	e := env{"SERGAS_ENV": "development", "DATA_DIR": dir}
	for _, args := range [][]string{
		{"bench", "-n", "0"},
		{"bench", "--runs", "21"},
		{"bench", "--rows", "10"},
		{"bench", "--max-time", "0s"},
		{"bench", "--backend", "mysql"},
		{"bench", "--service", "audit"},
		{"bench", "--backend", "postgres"},
	} {
		r := run(t, e, "", args...)
		if r.code != 2 || r.stderr == "" {
			t.Errorf("sergasctl %q: exit %d, want 2 with the reason on stderr\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := run(t, e, "", "bench", "--backend", "both"); !strings.Contains(r.stderr, "DATABASE_URL") {
		t.Errorf("--backend both without PostgreSQL does not name DATABASE_URL:\n%s", r.stderr)
	}
	missing := dir + "/missing"
	r := run(t, e.with("DATA_DIR", missing), "", "bench", "--json")
	if r.code != 3 || !strings.Contains(r.stdout, "does not exist") {
		t.Errorf("bench with a missing DATA_DIR: exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
	}
	if entries := dirEntries(t, dir); len(entries) != 0 {
		t.Errorf("refused benches created %v", entries)
	}
	h := mustRun(t, e, 0, "bench", "--help")
	for _, want := range []string{"Usage: sergasctl bench", "-backend", "-runs", "sergasctl_bench_", "Exit codes:"} {
		if !strings.Contains(h.stdout, want) {
			t.Errorf("bench --help lacks %q", want)
		}
	}
}

// TestBenchBrokenPipe runs the sergasctl binary with stdout and stderr on a pipe nobody reads
// ("sergasctl bench | head" once head has exited): its first progress line meets a broken pipe, and
// the process must still remove its scratch databases rather than die of SIGPIPE with them in place.
func TestBenchBrokenPipe(t *testing.T) {
	bin := proctest.Binary(t, "github.com/sergas/core/services/sergasctl/cmd/sergasctl")
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e, hs := benchInstallation(t, d)
		before := snapshot(t, e, hs)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close() // nobody reads: every write to w fails with EPIPE
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "bench", "--backend", string(d), "-n", "5", "--runs", "1", "--rows", "100")
		cmd.Stdout, cmd.Stderr = w, w
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range e {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		err = cmd.Run()
		w.Close()
		var exit *exec.ExitError
		if errors.As(err, &exit) && !exit.Exited() {
			t.Errorf("bench was killed by a signal (%v): it should survive a broken pipe", err)
		} else if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		before.same(t, snapshot(t, e, hs))
	})
}
