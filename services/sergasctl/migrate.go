package sergasctl

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/migrate"
)

func init() {
	register(&command{
		name:    "migrate",
		summary: "show, apply or roll back schema migrations (up, status, down N)",
		usage: `migrate [up|status|down N] [--service token|audit|webhook|all] [--json] [--yes]

  up       apply every migration this binary has that the database lacks (the default)
  status   the applied version, the binary's newest and what is pending; changes nothing
  down N   roll back the newest N migrations of each selected service, newest first, each with its
           down migration; refused (nothing run) when one of them has none. Asks for confirmation
           unless --yes. Stop the services first: they refuse a schema older than they need.`,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.BoolVar(&o.yes, "yes", false, "roll back without asking (migrate down)")
		},
		run: runMigrate,
	})
}

// migrationStatus is one service's schema against this binary's migrations.
type migrationStatus struct {
	Service  string            `json:"service"`
	Database string            `json:"database"`
	Version  int               `json:"version"`
	Latest   int               `json:"latest"`
	Pending  []string          `json:"pending"`
	Applied  []migrate.Applied `json:"applied"`
	Rollback []int             `json:"rollback_available"`
	Changed  []string          `json:"changed,omitempty"` // what up or down did
	State    string            `json:"state"`             // current, behind, ahead
	migs     []migrate.Migration
}

func runMigrate(ctx context.Context, c *cmdCtx) int {
	verb := "up"
	args := c.args
	if len(args) > 0 {
		verb, args = args[0], args[1:]
	}
	n := 0
	switch verb {
	case "up", "status":
		if len(args) != 0 {
			return c.usageError("migrate", "%s takes no arguments", verb)
		}
	case "down":
		if len(args) != 1 {
			return c.usageError("migrate", "down needs the number of migrations to roll back: migrate down N")
		}
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 {
			return c.usageError("migrate", "down N needs a whole number of at least 1, not %q", args[0])
		}
	default:
		return c.usageError("migrate", "unknown verb %q: use up, status or down N", verb)
	}
	targets, err := loadTargets(c.env, c.opts.service)
	if err != nil {
		return c.configFail("migrate", err)
	}
	var out []*migrationStatus
	code := ExitOK
	for _, t := range targets {
		st, err := migrateOne(ctx, c, t, verb, n)
		if err != nil {
			return c.fail("migrate", err)
		}
		if st == nil { // declined
			return ExitFailed
		}
		if verb == "status" && st.State == "ahead" {
			code = ExitFailed
		}
		out = append(out, st)
	}
	if c.opts.json {
		_ = writeJSON(c.Stdout, map[string]any{"services": out})
		return code
	}
	for _, st := range out {
		fmt.Fprintf(c.Stdout, "%-8s %s\n", st.Service, st.Database)
		for _, ch := range st.Changed {
			fmt.Fprintf(c.Stdout, "         %s\n", ch)
		}
		fmt.Fprintf(c.Stdout, "         schema version %d of %d (%s)", st.Version, st.Latest, st.State)
		if len(st.Pending) > 0 {
			fmt.Fprintf(c.Stdout, "; pending: %s", strings.Join(st.Pending, ", "))
		}
		fmt.Fprintln(c.Stdout)
	}
	return code
}

func migrateOne(ctx context.Context, c *cmdCtx, t *target, verb string, n int) (*migrationStatus, error) {
	var cn *conn
	var err error
	if verb == "up" {
		cn, err = openCreate(ctx, t)
	} else {
		cn, err = openExisting(ctx, t)
	}
	if err != nil {
		return nil, err
	}
	defer cn.Close()
	ms, downs, dialect, err := cn.migrations()
	if err != nil {
		return nil, err
	}
	var changed []string
	switch verb {
	case "up":
		applied, err := migrate.Up(ctx, cn.SQL, dialect, ms)
		if err != nil {
			return nil, explainBusy(cn, t.Name+": migrate up", err)
		}
		changed = append(changed, fmt.Sprintf("applied %d migration(s)", applied))
	case "down":
		cur, err := migrate.Version(ctx, cn.SQL, dialect)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		plan, err := migrate.DownPlan(cur, n, len(ms), downs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		if len(plan) == 0 {
			changed = append(changed, "nothing to roll back")
			break
		}
		if !c.opts.yes && !confirm(c, t, cn, plan, ms) {
			fmt.Fprintln(c.Stderr, "not confirmed: nothing was rolled back")
			return nil, nil
		}
		done, err := migrate.Down(ctx, cn.SQL, dialect, ms, downs, n)
		if err != nil {
			return nil, explainBusy(cn, fmt.Sprintf("%s: rolled back %d, then", t.Name, done), err)
		}
		for _, v := range plan {
			changed = append(changed, "rolled back "+migName(ms, v))
		}
	}
	return readStatus(ctx, cn, ms, downs, changed)
}

// confirm asks on stderr and reads "yes" from stdin.
func confirm(c *cmdCtx, t *target, cn *conn, plan []int, ms []migrate.Migration) bool {
	names := make([]string, len(plan))
	for i, v := range plan {
		names[i] = migName(ms, v)
	}
	fmt.Fprintf(c.Stderr, "Roll back %s of %s (%s)? Data in what they created is lost. Type yes to go on: ",
		strings.Join(names, ", "), t.Name, t.DB.Redacted())
	line, _ := bufio.NewReader(c.Stdin).ReadString('\n')
	if !strings.HasSuffix(line, "\n") {
		fmt.Fprintln(c.Stderr) // no terminal echoed a newline: end the question's line
	}
	return strings.TrimSpace(line) == "yes"
}

func migName(ms []migrate.Migration, v int) string {
	if v >= 1 && v <= len(ms) {
		return fmt.Sprintf("%04d_%s", v, ms[v-1].Name)
	}
	return fmt.Sprintf("%04d", v)
}

// readStatus reads the applied migrations without creating anything.
func readStatus(ctx context.Context, cn *conn, ms []migrate.Migration, downs map[int]string, changed []string) (*migrationStatus, error) {
	st := &migrationStatus{Service: cn.t.Name, Database: cn.t.DB.Redacted(), Latest: len(ms), Changed: changed,
		Pending: []string{}, Applied: []migrate.Applied{}, Rollback: []int{}, migs: ms}
	exists, err := hasMigrationsTable(ctx, cn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cn.t.Name, err)
	}
	if exists {
		if st.Applied, err = migrate.AppliedList(ctx, readHandle(cn)); err != nil {
			return nil, fmt.Errorf("%s: read schema_migrations: %w", cn.t.Name, err)
		}
	}
	for _, a := range st.Applied {
		st.Version = max(st.Version, a.Version)
	}
	for _, m := range ms {
		if m.Version > st.Version {
			st.Pending = append(st.Pending, migName(ms, m.Version))
		}
	}
	for v := st.Version; v >= 1; v-- {
		if _, ok := downs[v]; !ok {
			break
		}
		st.Rollback = append(st.Rollback, v)
	}
	switch {
	case st.Version > st.Latest:
		st.State = "ahead"
	case st.Version < st.Latest:
		st.State = "behind"
	default:
		st.State = "current"
	}
	return st, nil
}

// readHandle is the handle reads go through: the query-only pool on SQLite.
func readHandle(cn *conn) interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
} {
	if cn.SQLite != nil {
		return cn.SQLite.Read
	}
	return cn.SQL
}

func hasMigrationsTable(ctx context.Context, cn *conn) (bool, error) {
	var n int
	var err error
	if cn.t.DB.Dialect == db.SQLite {
		err = cn.SQLite.Read.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").Scan(&n)
	} else {
		err = cn.SQL.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'schema_migrations'", cn.t.DB.Schema).Scan(&n)
	}
	return n > 0, err
}
