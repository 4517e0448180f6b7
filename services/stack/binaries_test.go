package stack_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/authtest"
)

// buildBinaries compiles the given commands once per test into a temporary directory.
func buildBinaries(t *testing.T, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries; skipped with -short")
	}
	dir := t.TempDir()
	for _, n := range names {
		pkg := map[string]string{
			"sergas": "../stack/cmd/sergas", "sergas-token": "../token/cmd/sergas-token", "sergas-audit": "../audit/cmd/sergas-audit",
			"sergas-webhook": "../webhook/cmd/sergas-webhook", "sergas-gateway": "../gateway/cmd/sergas-gateway",
		}[n]
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, n), pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", n, err, out)
		}
	}
	return dir
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
	// logs holds what the process wrote (without -v), shown when it fails to come up.
	logs *lockedBuffer
}

func launch(t *testing.T, bin string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		cmd.Stdout, cmd.Stderr = nil, logs
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: filepath.Base(bin), cmd: cmd, done: make(chan error, 1), logs: logs}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

// stop sends SIGTERM and expects a clean exit (status 0) within 20 seconds.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM", p.name, err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
	}
}

// waitReady waits for url to answer 200; 90 s because under -race, on a loaded 2-core machine, four
// race-built processes can take well over 30 s to open their databases and report ready.
func waitReady(t *testing.T, url string) {
	t.Helper()
	waitAllReady(t, url)
}

// waitAllReady is waitReady for a stack of processes: it fails at once, with the process's output, when
// one of them exits before url is ready, and shows every process's output when the wait times out.
func waitAllReady(t *testing.T, url string, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			select {
			case err := <-p.done:
				t.Fatalf("%s exited (%v) before %s was ready; its output:\n%s", p.name, err, url, p.logs.String())
			default:
			}
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range procs {
		t.Logf("%s output:\n%s", p.name, p.logs.String())
	}
	t.Fatalf("%s not ready within 90s", url)
}

func TestSeparateBinariesServeAndStopCleanly(t *testing.T) {
	dir := buildBinaries(t, "sergas-token", "sergas-audit", "sergas-webhook", "sergas-gateway")
	data := t.TempDir()
	tok, aud, web, gw := freePort(t), freePort(t), freePort(t), freePort(t)
	common := []string{"DATA_DIR=" + data, "LOG_FORMAT=text", "SHUTDOWN_TIMEOUT=5s", "SERGAS_ENV=development", "AUDIT_DENIAL_INTERVAL=100ms"}
	services := []*proc{
		launch(t, filepath.Join(dir, "sergas-token"), append(common, "TOKEN_GRPC_ADDR="+tok, "AUDIT_GRPC_ENDPOINT="+aud)...),
		launch(t, filepath.Join(dir, "sergas-audit"), append(common, "AUDIT_GRPC_ADDR="+aud)...),
		launch(t, filepath.Join(dir, "sergas-webhook"), append(common, "WEBHOOK_GRPC_ADDR="+web, "WEBHOOK_METRICS_ADDR=127.0.0.1:0")...),
	}
	gateway := launch(t, filepath.Join(dir, "sergas-gateway"), append(common, "GATEWAY_HTTP_ADDR="+gw,
		"TOKEN_GRPC_ENDPOINT="+tok, "AUDIT_GRPC_ENDPOINT="+aud, "WEBHOOK_GRPC_ENDPOINT="+web)...)
	waitAllReady(t, "http://"+gw+"/readyz", append(services, gateway)...)
	resp, err := http.Post("http://"+gw+"/webhooks/zoho", "application/json", strings.NewReader(`{"ids":["1"]}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("ingest through separate processes: %v %v", resp, err)
	}
	resp.Body.Close()
	// The token process records a refused call in the audit process: each process derives the same
	// internal key from the development key, and the audit process accepts it.
	devKey, err := os.ReadFile(filepath.Join(data, "dev-api-key"))
	if err != nil {
		t.Fatal(err)
	}
	tokenConn, err := grpc.NewClient(tok, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer("sgk_dev.forged-forged-forged-forged"))
	if err != nil {
		t.Fatal(err)
	}
	defer tokenConn.Close()
	if _, err := tokenv1.NewTokenServiceClient(tokenConn).ListConnections(t.Context(), &tokenv1.ListConnectionsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("precondition: a forged key was not refused: %v", err)
	}
	auditConn, err := grpc.NewClient(aud, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(strings.TrimSpace(string(devKey))))
	if err != nil {
		t.Fatal(err)
	}
	defer auditConn.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		list, err := auditv1.NewAuditServiceClient(auditConn).ListEvents(t.Context(), &auditv1.ListEventsRequest{Action: "auth.denied"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.GetEvents()) > 0 {
			if e := list.GetEvents()[0]; !strings.Contains(e.GetResource(), "ListConnections") || e.GetMetadata().GetFields()["reason"].GetStringValue() != "invalid_credentials" {
				t.Fatalf("denial event %v", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the token process's denial never reached the audit process")
		}
		time.Sleep(50 * time.Millisecond) // bounded by the deadline
	}
	gateway.stop(t)
	for _, p := range services {
		p.stop(t)
	}
	for _, f := range []string{"token.db", "audit.db", "webhook.db"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestAllInOneBinaryPrintsAddressesAndStopsOnInterrupt(t *testing.T) {
	dir := buildBinaries(t, "sergas")
	gw := freePort(t)
	cmd := exec.Command(filepath.Join(dir, "sergas"))
	cmd.Env = append(os.Environ(), "SERGAS_ENV=development", "DATA_DIR="+t.TempDir(), "GATEWAY_HTTP_ADDR="+gw, "TOKEN_GRPC_ADDR=127.0.0.1:0",
		"AUDIT_GRPC_ADDR=127.0.0.1:0", "WEBHOOK_GRPC_ADDR=127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	var banner []string
	for len(banner) < 5 {
		select {
		case l := <-lines:
			if strings.TrimSpace(l) != "" {
				banner = append(banner, l)
			}
		case <-ctx.Done():
			t.Fatalf("no address banner; got %q", banner)
		}
	}
	for len(banner) < 8 { // the development key follows the addresses
		select {
		case l := <-lines:
			if strings.TrimSpace(l) != "" {
				banner = append(banner, l)
			}
		case <-ctx.Done():
			t.Fatalf("no development key in the banner; got %q", banner)
		}
	}
	if !strings.Contains(strings.Join(banner, "\n"), "http://"+gw) || !strings.Contains(strings.Join(banner, "\n"), "SERGAS_KEY=sgk_dev.") {
		t.Fatalf("banner lacks the gateway address:\n%s", strings.Join(banner, "\n"))
	}
	waitReady(t, "http://"+gw+"/readyz")
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop within 20s of Ctrl-C")
	}
	if c, err := net.DialTimeout("tcp", gw, time.Second); err == nil {
		c.Close()
		t.Fatal("gateway port still open after exit")
	}
}

func TestBadConfigurationNamesEveryVariable(t *testing.T) {
	dir := buildBinaries(t, "sergas-token")
	cmd := exec.Command(filepath.Join(dir, "sergas-token"))
	cmd.Env = append(os.Environ(), "TOKEN_DATABASE_URL=mysql://root:topsecret@db/x", "DATABASE_POOL_SIZE=zero", "LOG_FORMAT=text")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	for _, want := range []string{"TOKEN_DATABASE_URL", "DATABASE_POOL_SIZE"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not name %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "topsecret") {
		t.Errorf("output leaks the password:\n%s", out)
	}
}
