package deploy

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
)

// The real binaries start from what an overlay renders: the image's environment, the ConfigMap, each
// container's variables with the Secrets filled from secret.example.yaml's shapes, and the Secret files
// where the pod mounts them (under a temporary root). Each serves, reports SERVING under its name, serves
// /metrics, the gateway reaches all three and records an audit event with an agent's key from the
// example's api-keys.json, and each stops within its pod's grace period. Only the listen addresses
// (loopback, any port), the database (a temporary SQLite file, the test PostgreSQL) and the endpoints
// between services (the processes' addresses) differ from the cluster.
func TestRenderedConfigBootsTheStack(t *testing.T) {
	testutil.Tool(t, "kustomize")
	bins := bootBuild(t, "sergas-audit", "sergas-token", "sergas-webhook", "sergas-gateway")
	for _, dir := range []string{"k8s/overlays/dev", "k8s/overlays/prod"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			pgURL := ""
			if dir == "k8s/overlays/prod" {
				pgURL = dbtest.PostgresURL(t)
			}
			s := k8sRender(t, dir)
			pods := map[string]k8sPod{}
			for _, p := range k8sPods(t, s) {
				pods[p.binary] = p
			}
			secrets := bootSecrets(t, pgURL)
			started := map[string]*bootProc{}
			for _, name := range []string{"sergas-audit", "sergas-token", "sergas-webhook", "sergas-gateway"} {
				p := pods[name]
				env := bootEnv(t, s, p, secrets, started)
				if strings.HasPrefix(fmtString(env["DATABASE_URL"]), "postgres") {
					env[strings.ToUpper(strings.TrimPrefix(name, "sergas-"))+"_DATABASE_SCHEMA"] = dbtest.NewSchema(t, pgURL)
				}
				started[name] = bootStart(t, bins[name], env)
			}
			for _, name := range []string{"sergas-audit", "sergas-token", "sergas-webhook"} {
				bootCheckService(t, name, started[name])
			}
			bootCheckGateway(t, started["sergas-gateway"].addr, secrets["apikey/agents"])
			for _, name := range []string{"sergas-gateway", "sergas-webhook", "sergas-token", "sergas-audit"} {
				grace, _ := dig(pods[name].spec, "terminationGracePeriodSeconds").(int)
				started[name].stop(t, time.Duration(grace)*time.Second)
			}
			// Nothing went wrong enough to say so at ERROR (a missing credential, a file it could not read).
			for name, p := range started {
				for _, line := range strings.Split(p.log.String(), "\n") {
					if strings.Contains(line, `"level":"ERROR"`) {
						t.Errorf("%s logged: %s", name, line)
					}
				}
			}
		})
	}
}

// bootSecrets fills every key of secret.example.yaml with a value of the shape its placeholder asks for:
// API keys whose hashes go into api-keys.json (which keeps the example's ids and scopes), random keyrings
// and secrets, a fresh Ed25519 key, the test database's URL; the webhook sources as written.
func bootSecrets(t *testing.T, pgURL string) map[string]string {
	random := func(n int) []byte {
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := map[string]string{}
	examples := k8sOperatorSecrets(t)
	var keys struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(fmtString(examples["sergas-auth"]["api-keys.json"])), &keys); err != nil {
		t.Fatalf("secret.example.yaml api-keys.json: %v", err)
	}
	for _, k := range keys.Keys {
		id := fmtString(k["id"])
		key := "sgk_" + id + "." + base64.RawURLEncoding.EncodeToString(random(32))
		sum := sha256.Sum256([]byte(key))
		k["sha256"] = hex.EncodeToString(sum[:])
		out["apikey/"+id] = key
	}
	doc, _ := json.Marshal(keys)
	out["sergas-auth/api-keys.json"] = string(doc)
	apiKey := regexp.MustCompile(`^sgk_([a-z0-9-]+)\.`)
	for secret, data := range examples {
		for key, v := range data {
			example, name := fmtString(v), secret+"/"+key
			switch m := apiKey.FindStringSubmatch(example); {
			case out[name] != "":
			case m != nil:
				if out["apikey/"+m[1]] == "" {
					t.Errorf("secret.example.yaml: %s is key %s, which api-keys.json does not list", name, m[1])
				}
				out[name] = out["apikey/"+m[1]]
			case strings.Contains(example, "64-HEX-DIGITS"):
				out[name] = hex.EncodeToString(random(32))
			case strings.Contains(example, "32-RANDOM-BYTES-BASE64"):
				out[name] = "k1:" + base64.StdEncoding.EncodeToString(random(32))
			case strings.Contains(example, "PRIVATE KEY"):
				_, priv, _ := ed25519.GenerateKey(rand.Reader)
				der, err := x509.MarshalPKCS8PrivateKey(priv)
				if err != nil {
					t.Fatal(err)
				}
				out[name] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
			case strings.HasPrefix(example, "postgres://"):
				out[name] = pgURL
			default:
				out[name] = example // sources.json, OAuth client id and secret: any text does
			}
		}
	}
	return out
}

// bootBuild builds the commands into the test's temporary directory.
func bootBuild(t *testing.T, names ...string) map[string]string {
	dir := t.TempDir()
	out := map[string]string{}
	for _, name := range names {
		matches, _ := filepath.Glob("../services/*/cmd/" + name)
		if len(matches) != 1 {
			t.Fatalf("no command %s", name)
		}
		out[name] = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out[name], "./"+strings.TrimPrefix(matches[0], "../"))
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, b)
		}
	}
	return out
}

// bootEnv is the container's environment (image, ConfigMap, container) with Secrets resolved, paths moved
// under a root of the test's, and listen addresses and endpoints made local.
func bootEnv(t *testing.T, s k8sSet, p k8sPod, secrets map[string]string, started map[string]*bootProc) map[string]any {
	root := t.TempDir()
	env := map[string]any{}
	for _, l := range dockerStages(t)[len(dockerStages(t))-1].lines {
		if rest, ok := strings.CutPrefix(l, "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	for k, v := range p.env {
		env[k] = v
	}
	// The pod's Secret files, where it mounts them; its other volumes as empty directories.
	mounts, _ := dig(p.container, "volumeMounts").([]any)
	vols, _ := dig(p.spec, "volumes").([]any)
	for _, m := range mounts {
		dirPath := filepath.Join(root, fmtString(dig(m, "mountPath")))
		if err := os.MkdirAll(dirPath, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, v := range vols {
			secret := fmtString(dig(v, "secret", "secretName"))
			if dig(v, "name") != dig(m, "name") || secret == "" {
				continue
			}
			files := map[string]string{} // key -> path
			items, _ := dig(v, "secret", "items").([]any)
			for _, it := range items {
				files[fmtString(dig(it, "key"))] = fmtString(dig(it, "path"))
			}
			if len(items) == 0 {
				for key := range k8sOperatorSecrets(t)[secret] {
					files[key] = key
				}
			}
			for key, path := range files {
				if err := os.WriteFile(filepath.Join(dirPath, path), []byte(secrets[secret+"/"+key]), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for k, v := range env {
		switch val := v.(type) {
		case map[string]any:
			ref := dig(val, "secretKeyRef")
			env[k] = secrets[fmtString(dig(ref, "name"))+"/"+fmtString(dig(ref, "key"))]
		case string:
			switch {
			case strings.HasSuffix(k, "_GRPC_ADDR"), strings.HasSuffix(k, "_METRICS_ADDR"), k == "GATEWAY_HTTP_ADDR":
				env[k] = "127.0.0.1:0"
			case strings.HasSuffix(k, "_GRPC_ENDPOINT"):
				if proc := started["sergas-"+strings.ToLower(strings.TrimSuffix(k, "_GRPC_ENDPOINT"))]; proc != nil {
					env[k] = proc.addr
				}
			case strings.HasPrefix(val, "sqlite:///"):
				env[k] = "sqlite://" + root + "/" + strings.TrimPrefix(val, "sqlite:///")
			case strings.HasPrefix(val, "/"):
				env[k] = filepath.Join(root, val)
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, val)), 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return env
}

// bootProc is a running command with the addresses it logged.
type bootProc struct {
	cmd          *exec.Cmd
	addr         string // gRPC, or the gateway's HTTP
	metrics      string
	done         chan struct{}
	err          error
	log          strings.Builder
	logged, quit chan struct{}
}

// bootStart runs bin with exactly env (and PATH, HOME) and waits until it serves.
func bootStart(t *testing.T, bin string, env map[string]any) *bootProc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+fmtString(v))
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &bootProc{cmd: cmd, done: make(chan struct{})}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			_ = json.Unmarshal(sc.Bytes(), &rec)
			switch {
			case rec.Msg == "serving metrics":
				p.metrics = rec.Addr
			case rec.Msg == "serving gRPC" || rec.Msg == "serving HTTP":
				p.addr = rec.Addr
				close(serving)
			}
			if p.log.Len() < 1<<20 {
				p.log.Write(sc.Bytes())
				p.log.WriteByte('\n')
			}
		}
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
	})
	select {
	case <-serving:
		return p
	case <-p.done:
		t.Fatalf("%s exited before serving: %v\n%s", filepath.Base(bin), p.err, p.log.String())
	case <-time.After(time.Minute):
		t.Fatalf("%s not serving within a minute", filepath.Base(bin))
	}
	return nil
}

// stop sends SIGTERM, as the kubelet does, and wants a clean exit within grace.
func (p *bootProc) stop(t *testing.T, grace time.Duration) {
	t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s stopped with %v\n%s", filepath.Base(p.cmd.Path), p.err, p.log.String())
		}
		t.Logf("%s stopped %v after SIGTERM (grace period %v)", filepath.Base(p.cmd.Path), time.Since(start).Round(time.Millisecond), grace)
	case <-time.After(grace):
		t.Errorf("%s still running at the end of its grace period (%v); the kubelet would kill it", filepath.Base(p.cmd.Path), grace)
	}
}

// bootCheckService asks the health service what the readiness probe asks, and fetches /metrics.
func bootCheckService(t *testing.T, name string, p *bootProc) {
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{k8sServes[name], ""} {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s: health of %q: %v %v", name, svc, resp.GetStatus(), err)
		}
	}
	if p.metrics == "" {
		t.Errorf("%s: serves no metrics", name)
		return
	}
	body, code := bootGet(t, "http://"+p.metrics+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(body, "# TYPE go_goroutines") {
		t.Errorf("%s: /metrics answered %d", name, code)
	}
}

// bootCheckGateway waits (bounded) for /readyz, checks /healthz and records an audit event through REST
// with the agents' key.
func bootCheckGateway(t *testing.T, addr, agentKey string) {
	base := "http://" + addr
	var ready string
	var code int
	if _, ok := testutil.Wait(30*time.Second, func() bool {
		ready, code = bootGet(t, base+"/readyz", "")
		return code == http.StatusOK
	}); !ok {
		t.Fatalf("gateway /readyz still %d after 30s: %s", code, ready)
	}
	if _, code := bootGet(t, base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("gateway /healthz: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/audit/events",
		strings.NewReader(`{"actor":"agent-7","action":"deploy.boot","outcome":"OUTCOME_SUCCESS"}`))
	req.Header.Set("Authorization", "Bearer "+agentKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("recording an audit event with the agents' key through the gateway: %d %s", resp.StatusCode, body)
	}
}

func bootGet(t *testing.T, url, bearer string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}
