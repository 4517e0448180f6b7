package processtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// auditBinary builds sergas-audit once per test binary, into a directory removed at the end.
func auditBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sergas-processtest-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sergas-audit")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "github.com/sergas/core/services/audit/cmd/sergas-audit")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build sergas-audit: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// writerKey is an API key with audit:write and audit:read, and the AUTH_API_KEYS value that holds it.
func writerKey(t *testing.T) (key, keys string) {
	t.Helper()
	key, err := auth.NewAPIKey("writer")
	if err != nil {
		t.Fatal(err)
	}
	return key, fmt.Sprintf(`{"keys":[{"id":"writer","sha256":%q,"scopes":["audit:write","audit:read"]}]}`, auth.HashAPIKey(key))
}

// dbEnv is the environment that points sergas-audit at c's database.
func dbEnv(c db.Config) map[string]string {
	if c.Dialect == db.SQLite {
		return map[string]string{"AUDIT_DATABASE_URL": "sqlite://" + c.SQLitePath}
	}
	return map[string]string{"AUDIT_DATABASE_URL": c.PostgresURL, "AUDIT_DATABASE_SCHEMA": c.Schema}
}

// proc is a running sergas-audit process.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	err  error // set once done is closed
	mu   sync.Mutex
	logs bytes.Buffer
}

// startAudit runs sergas-audit in production mode (API-key authentication with keys, plaintext
// loopback, group commit at its defaults) with env on top, and waits until it serves gRPC. The process
// is killed when the test ends, if it still runs.
func startAudit(t *testing.T, keys string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(auditBinary(t))
	signingKey := filepath.Join(t.TempDir(), "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil {
		t.Fatal(err)
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AUDIT_SIGNING_KEY=" + signingKey,
		"SERGAS_ENV=production", "TLS_DISABLED=true", "AUDIT_GRPC_ADDR=127.0.0.1:0", "AUTH_API_KEYS=" + keys,
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
	p := &proc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			if p.logs.Len() < 1<<20 {
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
	}()
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.addr = <-ready:
		return p
	case <-p.done:
		t.Fatalf("sergas-audit exited before serving: %v\n%s", p.err, p.log())
	case <-time.After(time.Minute):
		t.Fatalf("sergas-audit not serving within a minute\n%s", p.log())
	}
	return nil
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// kill sends SIGKILL and waits (bounded) until the process is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("sergas-audit still running 30s after SIGKILL")
	}
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("sergas-audit stopped with %v\n%s", p.err, p.log())
		}
	case <-time.After(time.Minute):
		t.Fatal("sergas-audit did not stop within a minute of SIGTERM")
	}
}

// client connects to p with key; the connection closes when the test ends.
func (p *proc) client(t *testing.T) auditv1.AuditServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return auditv1.NewAuditServiceClient(conn)
}

func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// acked is what the service answered for an event it acknowledged.
type acked struct {
	id       string
	key      string
	sequence int64
	hash     []byte
}

func ackOf(e *auditv1.Event) acked {
	return acked{id: e.GetId(), key: e.GetIdempotencyKey(), sequence: e.GetSequence(), hash: e.GetHash()}
}

// request is the event a test's writer w sends as its n-th, with a key unique to the test.
func request(w string, n int) *auditv1.RecordEventRequest {
	return &auditv1.RecordEventRequest{Actor: "agent-" + w, Action: "crm.deal.update", Resource: fmt.Sprintf("Deals/%d", n),
		Outcome: auditv1.Outcome_OUTCOME_SUCCESS, ActorType: auditv1.ActorType_ACTOR_TYPE_AGENT, SessionId: "s-" + w,
		IdempotencyKey: fmt.Sprintf("%s-%d", w, n)}
}

// storedChain reads every stored event of the database c in sequence order and checks the chain: the
// sequences are 1..n without gaps, each event's previous hash is the hash before it and its hash is
// what services/audit/chain computes from its fields, and the chain head is the last event. It returns
// the events by id.
func storedChain(t *testing.T, c db.Config) map[string]*store.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := db.Open(ctx, c, "audit", false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var st store.Store
	var headSeq int64
	var headHash []byte
	if h.SQLite != nil {
		st = sqlite.New(h.SQLite)
		err = h.SQLite.Read.QueryRowContext(ctx, `SELECT sequence, hash FROM chain_head`).Scan(&headSeq, &headHash)
	} else {
		st = postgres.New(h.Postgres)
		err = h.Postgres.Pool.QueryRow(ctx, `SELECT sequence, hash FROM chain_head`).Scan(&headSeq, &headHash)
	}
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*store.Event{}
	prevSeq, prevHash := int64(0), chain.Genesis
	for range 1 << 20 { // bounded: every page moves forward or ends the loop
		page, err := st.EventList(ctx, store.EventListParams{After: prevSeq, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			switch {
			case e.Sequence != prevSeq+1:
				t.Fatalf("sequence %d follows %d: the chain has a gap or a fork", e.Sequence, prevSeq)
			case !bytes.Equal(e.PreviousHash, prevHash):
				t.Fatalf("event %d: previous_hash is not the hash of event %d", e.Sequence, prevSeq)
			case !bytes.Equal(chain.Hash(prevHash, e.Fields()), e.Hash):
				t.Fatalf("event %d: stored hash does not match its fields", e.Sequence)
			}
			if byID[e.ID] != nil {
				t.Fatalf("event id %s stored twice", e.ID)
			}
			byID[e.ID] = e
			prevSeq, prevHash = e.Sequence, e.Hash
		}
		if len(page) < 1000 {
			break
		}
	}
	if headSeq != prevSeq || !bytes.Equal(headHash, prevHash) {
		t.Fatalf("chain head is %d, the last stored event %d (or their hashes differ)", headSeq, prevSeq)
	}
	return byID
}

// checkAcked asserts that every acknowledged event is stored once, with the sequence and hash it was
// acknowledged with, and that no two acknowledgements share a sequence.
func checkAcked(t *testing.T, stored map[string]*store.Event, acks []acked) {
	t.Helper()
	bySeq := map[int64]string{}
	for _, a := range acks {
		e := stored[a.id]
		switch {
		case e == nil:
			t.Fatalf("acknowledged event %s (sequence %d, key %s) is not stored", a.id, a.sequence, a.key)
		case e.Sequence != a.sequence || !bytes.Equal(e.Hash, a.hash):
			t.Fatalf("acknowledged event %s: stored as sequence %d, acknowledged as %d (or its hash differs)", a.id, e.Sequence, a.sequence)
		case e.IdempotencyKey != a.key:
			t.Fatalf("acknowledged event %s: stored with key %q, sent with %q", a.id, e.IdempotencyKey, a.key)
		}
		if other, ok := bySeq[a.sequence]; ok && other != a.id {
			t.Fatalf("sequence %d acknowledged for two events, %s and %s", a.sequence, other, a.id)
		}
		bySeq[a.sequence] = a.id
	}
}

// writers is how many concurrent callers each process gets: enough to fill group commits.
var writers = max(8, 4*runtime.NumCPU())

func joinErrs(errs []error) string {
	var s []string
	for _, e := range errs {
		s = append(s, e.Error())
	}
	return strings.Join(s, "; ")
}
