package stack_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A stop whose in-flight HTTP request outlasts SHUTDOWN_TIMEOUT cuts that request, logs it and exits 0,
// from the gateway alone and from the all-in-one binary (both used to exit 1).
func TestGatewayStopCutsStragglersAndExitsZero(t *testing.T) {
	dir := buildBinaries(t, "sergas-gateway", "sergas")
	cases := []struct {
		bin, ready, request string
		env                 []string
	}{
		{"sergas-gateway", "/healthz", "POST /webhooks/zoho", []string{
			// No service runs: the request never gets past reading its body.
			"TOKEN_GRPC_ENDPOINT=" + freePort(t), "AUDIT_GRPC_ENDPOINT=" + freePort(t), "WEBHOOK_GRPC_ENDPOINT=" + freePort(t),
		}},
		{"sergas", "/readyz", "PUT /v1/connections/zoho/x", []string{
			"TOKEN_GRPC_ADDR=127.0.0.1:0", "AUDIT_GRPC_ADDR=127.0.0.1:0", "WEBHOOK_GRPC_ADDR=127.0.0.1:0",
		}},
	}
	for _, c := range cases {
		t.Run(c.bin, func(t *testing.T) {
			gw := freePort(t)
			logs := &lockedBuffer{}
			cmd := exec.Command(filepath.Join(dir, c.bin))
			cmd.Env = append(append(os.Environ(), "SERGAS_ENV=development", "DATA_DIR="+t.TempDir(), "LOG_FORMAT=text",
				"SHUTDOWN_TIMEOUT=1s", "GATEWAY_HTTP_ADDR="+gw), c.env...)
			cmd.Stderr = logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			waitReady(t, "http://"+gw+c.ready)

			// A request whose body never finishes. The 100 Continue says its handler is running (reading
			// the body), so it is in flight when the stop comes.
			conn, err := net.Dial("tcp", gw)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = conn.Write([]byte(c.request + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
				"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != http.StatusContinue {
				t.Fatalf("no 100 Continue: %v %v", resp, err)
			}
			if _, err := conn.Write([]byte(`{"refresh`)); err != nil {
				t.Fatal(err)
			}

			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s exited with %v after cutting a straggler:\n%s", c.bin, err, logs.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s did not stop within 20s of SIGTERM", c.bin)
			}
			if !strings.Contains(logs.String(), "requests=1") {
				t.Errorf("the log does not count the cut request:\n%s", logs.String())
			}
		})
	}
}
