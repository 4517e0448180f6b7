package sergasctl_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
)

// The exit codes reach the shell from the built command, not only from Run.
func TestCommandExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "sergasctl")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/sergasctl").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"health"}, 3}, // nothing set up yet
		{[]string{"setup"}, 0},  // development: files and keys under DATA_DIR
		{[]string{"health"}, 0}, // now it is
		{[]string{"validate"}, 0},
		{[]string{"migrate", "down", "1", "--service", "token"}, 1}, // not confirmed (stdin is empty)
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = []string{"SERGAS_ENV=development", "DATA_DIR=" + dir, "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.want {
			t.Errorf("sergasctl %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}

func TestUnreachablePostgresExits3(t *testing.T) {
	// Nothing listens on port 1 of loopback: the connection is refused at once.
	e := env{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir(), "DATABASE_URL": "postgres://sergas@127.0.0.1:1/sergas?sslmode=disable", "DATABASE_POOL_TIMEOUT": "3s"}
	for _, args := range [][]string{{"setup"}, {"validate"}, {"health"}, {"migrate", "status"}, {"migrate", "up"}} {
		r := run(t, e, "", append(args, "--service", "audit")...)
		if r.code != 3 {
			t.Errorf("%v against a server that is down: exit %d, want 3\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "sergas@") {
			t.Errorf("%v printed the connection string", args)
		}
	}
}

func TestSchemaNewerThanTheBinary(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup", "--service", "token")
		execSQL(t, serviceDB(t, e, "token"), "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'from_the_future', 0)")
		var st statusDoc
		mustRun(t, e, 1, "migrate", "status", "--service", "token", "--json").decode(t, &st)
		if st.Services[0].State != "ahead" || st.Services[0].Version != 99 {
			t.Errorf("status: %+v", st.Services[0])
		}
		var doc checkDoc
		mustRun(t, e, 1, "validate", "--service", "token", "--json").decode(t, &doc)
		if status, detail, _ := doc.find(t, "token", "schema"); status != "fail" || !strings.Contains(detail, "newer than this binary") {
			t.Errorf("schema check: %s %q", status, detail)
		}
		if r := run(t, e, "", "migrate", "down", "1", "--yes", "--service", "token"); r.code != 1 || !strings.Contains(r.stderr, "newer") {
			t.Errorf("down on a newer schema: exit %d %s", r.code, r.stderr)
		}
		if r := run(t, e, "", "migrate", "up", "--service", "token"); r.code != 1 || !strings.Contains(r.stderr, "upgrade the binary") {
			t.Errorf("up on a newer schema: exit %d %s", r.code, r.stderr)
		}
	})
}
