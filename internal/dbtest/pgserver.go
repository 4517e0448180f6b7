package dbtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// PGServer is a throwaway PostgreSQL cluster that a test may stop and start at will, for outage tests
// (never the shared test server). As root, the cluster runs as the postgres user, as in
// scripts/with-postgres. It skips the test where the server binaries are missing, unless
// REQUIRE_POSTGRES=1.
type PGServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	// URL connects to the cluster's postgres database as the superuser.
	URL string
}

// StartPGServer makes a cluster in a temporary directory and starts it; it is killed and removed when
// the test ends.
func StartPGServer(t testing.TB) *PGServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatal("PostgreSQL server binaries not found but REQUIRE_POSTGRES=1")
		}
		t.Skip("PostgreSQL server binaries not found")
	}
	s := &PGServer{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "sergas-pg-outage-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root without a postgres user")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	s.run("initdb", "-D", s.dir+"/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	s.Start()
	t.Cleanup(func() { _ = s.cmd("pg_ctl", "-D", s.dir+"/data", "-w", "-t", "60", "-m", "immediate", "stop").Run() })
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	return s
}

func (s *PGServer) run(name string, args ...string) {
	s.t.Helper()
	if err := s.cmd(name, args...).Run(); err != nil {
		log, _ := os.ReadFile(s.dir + "/server.log")
		s.t.Fatalf("%s %v: %v\n%s", name, args, err, log)
	}
}

func (s *PGServer) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// Start starts the server and waits until it accepts connections.
func (s *PGServer) Start() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir+"/data", "-l", s.dir+"/server.log", "-w", "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", s.port, s.dir), "start")
}

// StopImmediate kills the server the way a crash would: no shutdown handshake with the clients.
func (s *PGServer) StopImmediate() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir+"/data", "-w", "-t", "60", "-m", "immediate", "stop")
}
