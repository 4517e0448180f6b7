package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/grpcserver"
)

// buildVerifier builds tools/auditverify, as a third party would run it, into a temporary directory.
func buildVerifier(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "auditverify")
	out, err := exec.Command("go", "build", "-o", bin, "../../tools/auditverify").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serveSignedStack runs the audit service as deployed (Open with a signing key file, the platform's
// Serve, authentication off) behind the real gateway, and returns the gateway's base URL.
func serveSignedStack(t *testing.T, d db.Dialect) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0", "AUDIT_SIGNING_KEY": keyFile,
		"AUDIT_CHECKPOINT_INTERVAL": "0", "AUDIT_RETENTION_DAYS": "0"}))
	cfg.DB = dbtest.Config(t, d)
	cfg.GRPC = grpcserver.Config{Addr: cfg.GRPC.Addr, MaxRecvBytes: 1 << 20, MaxSendBytes: 4 << 20, MaxConcurrentStreams: 100, ShutdownTimeout: 10 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	unlimited := auth.Rate{PerSecond: 1e9, Burst: 1e9}
	rt := &app.Runtime{Security: &auth.Security{Authenticator: &auth.Authenticator{Disabled: true},
		Limits: auth.NewLimiters(auth.Limits{Read: unlimited, Write: unlimited, Admin: unlimited, Failures: unlimited})}}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg.ServiceConfig, rt, log, svc, func(a string) { addrc <- a }) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case addr := <-addrc:
		return serveGateway(t, addr)
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	return ""
}

// rest sends one REST request and returns the body, failing the test on a status other than 200.
func rest(t *testing.T, method, url, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %v\n%s", method, url, resp.StatusCode, err, raw)
	}
	return raw
}

// runVerifier runs the verifier on export and returns its exit code and output.
func runVerifier(t *testing.T, bin string, export []byte, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(export)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// The README's verification, end to end on both backends: events (redacted metadata, unicode, numbers
// such as 1e21 and 0.1) recorded and a checkpoint signed through the gateway's REST routes, the export
// and the public key fetched over REST, and the standalone verifier (built as a third party would) proves
// the export against the signature; one byte changed in one exported event makes it fail, naming the
// event's sequence.
func TestExportVerifiedByTheStandaloneVerifier(t *testing.T) {
	bin := buildVerifier(t)
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			base := serveSignedStack(t, d)
			batch := func(from, n int) string {
				var evs []string
				for i := from; i < from+n; i++ {
					evs = append(evs, fmt.Sprintf(`{"actor":"agent-%d","action":"crm.deal.update","resource":"Deals/%d","outcome":"OUTCOME_SUCCESS",
						"actorType":"ACTOR_TYPE_AGENT","sessionId":"s-%d","requestId":"r-%d","sourceService":"sergas-test","idempotencyKey":"k-%d",
						"metadata":{"i":%d,"password":"hunter2","note":"Zoë 日本語 🙂 \"quoted\" \\ <tag>","big":1e21,"small":0.1,"neg":-0.000001,
						"nested":{"api_key":"sk-1","list":[1,"two",null,true,{"deep":[2.5e-8]}]}}}`, i, i, i%3, i, i, i))
				}
				return `{"events":[` + strings.Join(evs, ",") + `]}`
			}
			rest(t, http.MethodPost, base+"/v1/audit/events:batchRecord", batch(1, 40))
			var created struct {
				Checkpoint struct{ ID, Sequence string } `json:"checkpoint"`
			}
			if err := json.Unmarshal(rest(t, http.MethodPost, base+"/v1/audit/checkpoints", "{}"), &created); err != nil || created.Checkpoint.Sequence != "40" {
				t.Fatalf("checkpoint: %+v %v", created, err)
			}
			rest(t, http.MethodPost, base+"/v1/audit/events:batchRecord", batch(41, 5)) // after the checkpoint

			keyFile := filepath.Join(t.TempDir(), "signing-key.json")
			if err := os.WriteFile(keyFile, rest(t, http.MethodGet, base+"/v1/audit/signing-key", ""), 0o600); err != nil {
				t.Fatal(err)
			}
			export := rest(t, http.MethodGet, base+"/v1/audit/events:export", "")
			lines := strings.Split(strings.TrimSpace(string(export)), "\n")
			if len(lines) != 46 || strings.Contains(string(export), "hunter2") || strings.Contains(string(export), "sk-1") {
				t.Fatalf("%d lines (want 45 events and 1 checkpoint), or a secret in the export", len(lines))
			}

			code, out := runVerifier(t, bin, export, "-key", keyFile, "-start", "1", "-end", "45")
			if code != 0 || !strings.Contains(out, "events 1..45 chain-verified") ||
				!strings.Contains(out, "events 1..40 covered by checkpoint #"+created.Checkpoint.ID) ||
				!strings.Contains(out, "events 41..45 are chained but signed by no checkpoint") {
				t.Fatalf("verifier: exit %d\n%s", code, out)
			}
			t.Logf("verifier:\n%s", out)

			checkWithOpenSSL(t, export, keyFile, created.Checkpoint.ID)

			// One byte of one exported event: a letter of sequence 7's actor.
			tampered := bytes.Replace(export, []byte(`"actor":"agent-7"`), []byte(`"actor":"agent-8"`), 1)
			if bytes.Equal(tampered, export) {
				t.Fatal("sequence 7's actor is not in the export")
			}
			if code, out := runVerifier(t, bin, tampered, "-key", keyFile); code != 1 || !strings.Contains(out, "sequence 7: its fields do not give its hash") {
				t.Fatalf("tampered export: exit %d\n%s", code, out)
			}
			checkWithPython(t, export, tampered)

			// A cut export (the checkpoint and the last events lost) is told from a complete one.
			cut := []byte(strings.Join(lines[:30], "\n"))
			if code, out := runVerifier(t, bin, cut, "-key", keyFile, "-end", "45"); code != 1 || !strings.Contains(out, "ends at sequence 30, not 45") {
				t.Fatalf("cut export: exit %d\n%s", code, out)
			}
		})
	}
}

// opensslSteps are the README's commands that check a checkpoint of an export with standard tools.
const opensslSteps = `jq -r .publicKeyPem signing-key.json > key.pem
jq -j "select(.result.checkpoint.id == \"$ID\") | .result.checkpoint.signedText" export.ndjson > checkpoint.txt
jq -r "select(.result.checkpoint.id == \"$ID\") | .result.checkpoint.signature" export.ndjson | base64 -d > checkpoint.sig
openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in checkpoint.txt -sigfile checkpoint.sig`

// checkWithOpenSSL runs opensslSteps on the export, where jq and openssl are installed.
func checkWithOpenSSL(t *testing.T, export []byte, keyFile, id string) {
	t.Helper()
	for _, tool := range []string{"jq", "openssl", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s is not installed: the README's openssl steps are not run", tool)
			return
		}
	}
	dir := t.TempDir()
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "signing-key.json"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "export.ndjson"), export, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-ec", opensslSteps)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "ID="+id)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl steps: %v\n%s", err, out)
	}
	text, err := os.ReadFile(filepath.Join(dir, "checkpoint.txt"))
	if err != nil || !strings.HasPrefix(string(text), "sergas-audit-checkpoint v1\n") {
		t.Fatalf("checkpoint.txt: %q %v", text, err)
	}
}

// checkWithPython runs the README's Python script on the export and on the tampered one, where python3
// is installed.
func checkWithPython(t *testing.T, export, tampered []byte) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Log("python3 is not installed: the README's Python script is not run")
		return
	}
	run := func(in []byte) (int, string) {
		cmd := exec.Command("python3", "../../tools/auditverify/verify_chain.py")
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run(export); code != 0 || !strings.Contains(out, "events 1..45: every hash recomputed") ||
		!strings.Contains(out, "sequence 40 has the hash it signs") {
		t.Fatalf("verify_chain.py: exit %d\n%s", code, out)
	}
	if code, out := run(tampered); code != 1 || !strings.Contains(out, "FAIL: sequence 7: its fields do not give its hash") {
		t.Fatalf("verify_chain.py on the tampered export: exit %d\n%s", code, out)
	}
}
