package processtest

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/proctest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
)

func TestMain(m *testing.M) { proctest.Main(m) }

var auditService = proctest.Service{Name: "audit", Package: "github.com/sergas/core/services/audit/cmd/sergas-audit"}

// writerKey is an API key with audit:write and audit:read, and the AUTH_API_KEYS value that holds it.
func writerKey(t *testing.T) (key, keys string) {
	t.Helper()
	k := authtest.NewKey(t, "writer", "audit:write", "audit:read")
	return k.Key, authtest.JSON(k)
}

// startAudit runs sergas-audit (proctest.Service.Start: production mode, plaintext loopback) with
// API-key authentication with keys, a fresh signing key, group commit at its defaults and the database
// c, and waits until it serves gRPC.
func startAudit(t *testing.T, keys string, c db.Config) *proctest.Proc {
	t.Helper()
	signingKey := filepath.Join(t.TempDir(), "audit-signing-key.pem")
	if _, err := audit.WriteSigningKeyFile(signingKey); err != nil {
		t.Fatal(err)
	}
	env := auditService.DatabaseEnv(c)
	env["AUDIT_SIGNING_KEY"] = signingKey
	env["AUTH_API_KEYS"] = keys
	return auditService.Start(t, env)
}

// auditClient connects to p; the connection closes when the test ends.
func auditClient(t *testing.T, p *proctest.Proc) auditv1.AuditServiceClient {
	t.Helper()
	return auditv1.NewAuditServiceClient(p.Conn(t))
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
