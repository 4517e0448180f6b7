package proctest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sergas/core/internal/db"
)

// Service is a service command that tests run as a process.
type Service struct {
	// Name is the service's name as its variables spell it in lower case: "audit" reads AUDIT_*.
	Name string
	// Package is the import path of its command.
	Package string
}

// DatabaseEnv is the environment that points the service at c's database.
func (s Service) DatabaseEnv(c db.Config) map[string]string {
	prefix := strings.ToUpper(s.Name)
	if c.Dialect == db.SQLite {
		return map[string]string{prefix + "_DATABASE_URL": "sqlite://" + c.SQLitePath}
	}
	return map[string]string{prefix + "_DATABASE_URL": c.PostgresURL, prefix + "_DATABASE_SCHEMA": c.Schema}
}

// Proc is a running service process.
type Proc struct {
	name string
	cmd  *exec.Cmd
	// Addr is the loopback address it serves gRPC on.
	Addr string
	done chan struct{}
	err  error // set once done is closed
	mu   sync.Mutex
	logs bytes.Buffer
	race bool // the race detector reported a race (counted beyond maxLog too)
}

// raceReport starts each report of the race detector.
const raceReport = "WARNING: DATA RACE"

// maxLog bounds the log a Proc keeps for failure messages.
const maxLog = 1 << 20

// Start runs the service in production mode (plaintext gRPC on a free loopback port, JSON logs, the
// guard's rate limits far above what a test sends) with env on top, and waits until it serves gRPC.
// The process is killed when the test ends, if it still runs.
func (s Service) Start(t testing.TB, env map[string]string) *Proc {
	t.Helper()
	cmd := exec.Command(binary(t, s.Package))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"SERGAS_ENV=production", "TLS_DISABLED=true", strings.ToUpper(s.Name) + "_GRPC_ADDR=127.0.0.1:0",
		"LOG_FORMAT=json", "LOG_LEVEL=info", "DATA_DIR=" + t.TempDir(),
		// Far above what a test sends, so that the limiter never refuses a call.
		"RATE_LIMIT_PER_SECOND=1000000", "RATE_LIMIT_BURST=1000000",
		"RATE_LIMIT_READ_PER_SECOND=1000000", "RATE_LIMIT_READ_BURST=1000000"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{name: s.Name, cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		p.readLog(stderr, ready)
		// Wait only once the log is read to its end: Wait closes the pipe.
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if p.raced() {
			t.Errorf("%s reported a data race\n%s", s.Name, p.Log())
		}
	})
	select {
	case p.Addr = <-ready:
		return p
	case <-p.done:
		t.Fatalf("%s exited before serving: %v\n%s", s.Name, p.err, p.Log())
	case <-time.After(time.Minute):
		t.Fatalf("%s not serving within a minute\n%s", s.Name, p.Log())
	}
	return nil
}

// readLog keeps the process's log (up to maxLog) and sends the address once it logs that it serves.
func (p *Proc) readLog(stderr io.Reader, ready chan<- string) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		p.mu.Lock()
		p.race = p.race || bytes.Contains(line, []byte(raceReport))
		if p.logs.Len() < maxLog {
			p.logs.Write(line)
			p.logs.WriteByte('\n')
		}
		p.mu.Unlock()
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving gRPC" && rec.Addr != "" {
			select {
			case ready <- rec.Addr:
			default:
			}
		}
	}
}

func (p *Proc) raced() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.race
}

// Log returns what the process has logged so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Kill sends SIGKILL and waits (bounded) until the process is gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after SIGKILL", p.name)
	}
}

// Stop sends SIGTERM and waits (bounded) for a clean exit.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s stopped with %v\n%s", p.name, p.err, p.Log())
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s did not stop within a minute of SIGTERM", p.name)
	}
}

// Conn connects to the process over plaintext loopback with opts (authtest.Bearer for a credential);
// the connection closes when the test ends.
func (p *Proc) Conn(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(p.Addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
