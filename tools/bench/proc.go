package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildTools compiles the server and the load generator once into dir.
func buildTools(dir string) error {
	for _, name := range []string{"server", "loadgen"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./tools/bench/"+name)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", name, err)
		}
	}
	return nil
}

// serverProc is a running bench server process.
type serverProc struct {
	cmd   *exec.Cmd
	addr  string
	pprof string
	env   map[string]string
	logs  *tailBuffer
	done  chan error
}

// startServer starts the bench server with env on top of this process's environment (minus any
// database setting, which env alone decides) and waits until it listens.
func startServer(bin string, env map[string]string, pprofAddr string, args ...string) (*serverProc, error) {
	if pprofAddr != "" {
		args = append(args, "-pprof", pprofAddr)
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := env[name]; ours || strings.Contains(name, "DATABASE") || strings.HasPrefix(name, "RATE_LIMIT") ||
			strings.HasPrefix(name, "AUTH_") || strings.HasPrefix(name, "TOKEN_") || strings.HasPrefix(name, "AUDIT_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The server's log (its start-up warnings about running without an audit key, say) is shown only
	// when it fails, so that the table stays readable.
	logs := &tailBuffer{max: 64 << 10}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, pprof: pprofAddr, env: env, logs: logs, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- addr
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case p.addr = <-ready:
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("bench server exited before listening: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("bench server not listening within 60s")
	}
}

// stop sends SIGTERM and waits (bounded) for the process to exit.
func (p *serverProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("bench server: %v\n%s", err, p.logs.String())
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("bench server did not stop within 30s of SIGTERM")
	}
}

// profile records a CPU profile of the server for d into path.
func (p *serverProc) profile(ctx context.Context, d time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprof, max(1, int(d.Seconds()))), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// result is one load generator run (its JSON line).
type result struct {
	Calls      int     `json:"calls"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error"`
	PerSecond  float64 `json:"per_second"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	ServerCPU  float64 `json:"server_cpu_us"`
	ClientCPU  float64 `json:"client_cpu_us"`
	DBCPU      float64 `json:"db_cpu_us"`
	// PerCall is how many audit events each call carried (0 or 1: one).
	PerCall int `json:"events_per_call"`
}

// load runs the load generator against addr and returns its result; a failed call fails the run.
// extra are more load generator flags (-batch, -store-size, -db-cpu).
func load(bin string, s *serverProc, key, call string, callers int, d, warmup time.Duration, extra ...string) (result, error) {
	args := append([]string{"-addr", s.addr, "-call", call, "-c", fmt.Sprint(callers), "-d", d.String(), "-warmup", warmup.String(),
		"-server-pid", fmt.Sprint(s.cmd.Process.Pid)}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "BENCH_API_KEY="+key)
	cmd.Stderr = os.Stderr
	ctx, cancel := context.WithTimeout(context.Background(), d+warmup+2*time.Minute)
	defer cancel()
	out, err := runBounded(ctx, cmd)
	if err != nil {
		return result{}, fmt.Errorf("loadgen %s -c %d: %w", call, callers, err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("loadgen output %q: %w", out, err)
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("%s at %d callers: %d of %d calls failed, first: %s", call, callers, r.Errors, r.Calls, r.FirstError)
	}
	return r, nil
}

func runBounded(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var buf strings.Builder
	cmd.Stdout = &buf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(buf.String()), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return nil, ctx.Err()
	}
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = b.buf[over:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
