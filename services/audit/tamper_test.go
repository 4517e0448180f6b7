package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
)

// tamperLen is how many events each tamper test appends before the attack.
const tamperLen = 20

// attacker holds its own connection to the audit database, as someone with database access (not the
// service's credentials or key) would.
type attacker struct {
	t  *testing.T
	h  *db.Handle
	st store.Store
}

func newAttacker(t *testing.T, cfg db.Config) *attacker {
	t.Helper()
	h, err := db.Open(context.Background(), cfg, "audit", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	a := &attacker{t: t, h: h}
	if h.SQLite != nil {
		a.st = sqlite.New(h.SQLite)
	} else {
		a.st = postgres.New(h.Postgres)
	}
	return a
}

// exec runs one statement written with $N placeholders.
func (a *attacker) exec(q string, args ...any) {
	a.t.Helper()
	var err error
	if a.h.SQLite != nil {
		_, err = a.h.SQLite.Write.ExecContext(context.Background(), sqlq.Rebind(q), args...)
	} else {
		_, err = a.h.Postgres.Pool.Exec(context.Background(), q, args...)
	}
	if err != nil {
		a.t.Fatalf("%s: %v", q, err)
	}
}

// dropGuards removes the append-only guards of every audit table: SQLite's triggers are dropped, and
// PostgreSQL's user triggers disabled, whatever their names.
func (a *attacker) dropGuards() {
	a.t.Helper()
	ctx := context.Background()
	if a.h.SQLite != nil {
		rows, err := a.h.SQLite.Write.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'trigger'`)
		if err != nil {
			a.t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				a.t.Fatal(err)
			}
			names = append(names, n)
		}
		rows.Close()
		if len(names) == 0 {
			a.t.Fatal("no triggers to drop: the test no longer meets the guards")
		}
		for _, n := range names {
			a.exec(`DROP TRIGGER "` + n + `"`)
		}
		return
	}
	for _, table := range []string{"events", "chain_head", "checkpoints"} {
		a.exec(`ALTER TABLE ` + table + ` DISABLE TRIGGER USER`)
	}
}

func (a *attacker) event(seq int64) *store.Event {
	a.t.Helper()
	es, err := a.st.EventList(context.Background(), store.EventListParams{After: seq - 1, Limit: 1})
	if err != nil || len(es) == 0 || es[0].Sequence != seq {
		a.t.Fatalf("event %d: %v", seq, err)
	}
	return es[0]
}

// rewrite stores e's fields (but not its sequence) and hashes over row seq.
func (a *attacker) rewrite(seq int64, e *store.Event) {
	a.t.Helper()
	a.exec(`UPDATE events SET actor = $1, previous_hash = $2, hash = $3 WHERE sequence = $4`, e.Actor, e.PreviousHash, e.Hash, seq)
}

// move gives row from the sequence to.
func (a *attacker) move(from, to int64) {
	a.t.Helper()
	a.exec(`UPDATE events SET sequence = $1 WHERE sequence = $2`, to, from)
}

func (a *attacker) moveHead(seq int64, hash []byte) {
	a.t.Helper()
	a.exec(`UPDATE chain_head SET sequence = $1, hash = $2 WHERE id = 1`, seq, hash)
}

// insert stores a forged event.
func (a *attacker) insert(e *store.Event) {
	a.t.Helper()
	occur, record := any(e.OccurTime), any(e.RecordTime)
	if a.h.SQLite != nil {
		occur, record = e.OccurTime.UnixMicro(), e.RecordTime.UnixMicro()
	}
	a.exec(`INSERT INTO events (sequence, id, occur_time, record_time, actor, action, resource, outcome, metadata,
		principal, hash_version, previous_hash, hash, actor_type, session_id, request_id, source_service)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		e.Sequence, e.ID, occur, record, e.Actor, e.Action, e.Resource, e.Outcome, e.Metadata,
		e.Principal, e.HashVersion, e.PreviousHash, e.Hash, e.ActorType, e.SessionID, e.RequestID, e.SourceService)
}

// forge returns a chain-correct event at seq that links to prev.
func forge(seq int64, prev []byte) *store.Event {
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := &store.Event{ID: uuid.Must(uuid.NewV7()).String(), OccurTime: now, RecordTime: now, Actor: "intruder",
		Action: "crm.deal.delete", Resource: "Deals/42", Outcome: 1, Metadata: `{}`, Principal: "apikey:writer"}
	e.Seal(seq-1, prev)
	return e
}

// rewriteFrom changes event k and re-hashes it and every later event, moving the head: a rewrite by
// someone who knows the encoding. It returns the new head hash.
func (a *attacker) rewriteFrom(k, head int64) []byte {
	a.t.Helper()
	prev := a.event(k - 1).Hash
	for s := k; s <= head; s++ {
		e := a.event(s)
		if s == k {
			e.Actor = "someone-else"
		}
		e.PreviousHash = prev
		e.Hash = chain.Hash(prev, e.Fields())
		a.rewrite(s, e)
		prev = e.Hash
	}
	a.moveHead(head, prev)
	return prev
}

// tamperKeyFile writes a new Ed25519 signing key as AUDIT_SIGNING_KEY expects it.
func tamperKeyFile(t testing.TB) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signedLog serves an audit service with a signing key on d (through the platform's Serve and real
// gRPC) and appends n events through it.
func signedLog(t *testing.T, d db.Dialect, n int) (auditv1.AuditServiceClient, audit.Config) {
	t.Helper()
	cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0",
		"AUDIT_SIGNING_KEY": tamperKeyFile(t), "AUDIT_CHECKPOINT_INTERVAL": "0", "AUDIT_RETENTION_DAYS": "0"}))
	cfg.DB = dbtest.Config(t, d)
	client := serveWith(t, cfg)
	appendEvents(t, client, n)
	return client, cfg
}

// appendEvents appends n events, up to 1,000 per RecordEvents call.
func appendEvents(t testing.TB, client auditv1.AuditServiceClient, n int) {
	t.Helper()
	for done := 0; done < n; {
		req := &auditv1.RecordEventsRequest{}
		for i := 0; i < min(1000, n-done); i++ {
			req.Events = append(req.Events, &auditv1.RecordEventRequest{Actor: "agent-7", Action: fmt.Sprintf("crm.deal.update.%d", done+i),
				Resource: "Deals/42", Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
		}
		if _, err := client.RecordEvents(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		done += len(req.Events)
	}
}

func checkpointNow(t *testing.T, client auditv1.AuditServiceClient, wantSeq int64) {
	t.Helper()
	resp, err := client.CreateCheckpoint(context.Background(), &auditv1.CreateCheckpointRequest{})
	if err != nil || resp.GetCheckpoint().GetSequence() != wantSeq {
		t.Fatalf("checkpoint: %v %v, want one at %d", resp, err, wantSeq)
	}
}

func verify(t *testing.T, client auditv1.AuditServiceClient, start, end int64) *auditv1.VerifyChainResponse {
	t.Helper()
	v, err := client.VerifyChain(context.Background(), &auditv1.VerifyChainRequest{StartSequence: start, EndSequence: end})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifyChainNamesTampering: on each backend, an attacker with database access drops the
// append-only guards and changes, re-hashes, deletes, inserts, reorders, rewrites or cuts rows directly;
// VerifyChain, asked through gRPC, names exactly the sequence and the kind. Before the attack the log
// verifies, and its answer never holds a stored value.
func TestVerifyChainNamesTampering(t *testing.T) {
	const n = tamperLen
	const k = 7
	type tamperCase struct {
		name string
		// checkpoints are signed (at the head) after appending these many events, before the attack.
		checkpoints []int
		attack      func(a *attacker)
		wantSeq     int64
		want        auditv1.ChainProblem
	}
	cases := []tamperCase{
		{name: "field changed", attack: func(a *attacker) {
			a.exec(`UPDATE events SET actor = 'someone-else' WHERE sequence = $1`, k)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_CHANGED},
		{name: "changed and re-hashed", attack: func(a *attacker) {
			e := a.event(k)
			e.Actor = "someone-else"
			e.Hash = chain.Hash(e.PreviousHash, e.Fields())
			a.rewrite(k, e)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_CHANGED},
		{name: "deleted", attack: func(a *attacker) {
			a.exec(`DELETE FROM events WHERE sequence = $1`, k)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_MISSING},
		{name: "deleted and the rest renumbered", attack: func(a *attacker) {
			a.exec(`DELETE FROM events WHERE sequence = $1`, k)
			for s := int64(k + 1); s <= n; s++ {
				a.move(s, s-1)
			}
			a.moveHead(n-1, a.event(n-1).Hash)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_MISSING},
		{name: "forged event inserted", attack: func(a *attacker) {
			for s := int64(n); s >= k; s-- {
				a.move(s, s+1)
			}
			a.insert(forge(k, a.event(k-1).Hash))
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_INSERTED},
		{name: "forged event appended beyond the head", attack: func(a *attacker) {
			a.insert(forge(n+1, a.event(n).Hash))
		}, wantSeq: n + 1, want: auditv1.ChainProblem_CHAIN_PROBLEM_INSERTED},
		{name: "two events swapped", attack: func(a *attacker) {
			a.move(k, -1)
			a.move(k+1, k)
			a.move(-1, k+1)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_OUT_OF_ORDER},
		{name: "two events far apart swapped", attack: func(a *attacker) {
			a.move(k, -1)
			a.move(k+9, k)
			a.move(-1, k+9)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_OUT_OF_ORDER},
		{name: "rewritten from k to the end, head moved", checkpoints: []int{n}, attack: func(a *attacker) {
			a.rewriteFrom(k, n)
		}, wantSeq: n, want: auditv1.ChainProblem_CHAIN_PROBLEM_CHECKPOINT_MISMATCH},
		{name: "rewritten from k to the end, head moved, checkpoints at 10 and 20", checkpoints: []int{10, n}, attack: func(a *attacker) {
			a.rewriteFrom(k, n)
		}, wantSeq: 10, want: auditv1.ChainProblem_CHAIN_PROBLEM_CHECKPOINT_MISMATCH},
		{name: "rewritten from k, the checkpoint's hash changed to match", checkpoints: []int{n}, attack: func(a *attacker) {
			head := a.rewriteFrom(k, n)
			a.exec(`UPDATE checkpoints SET hash = $1`, head)
		}, wantSeq: n, want: auditv1.ChainProblem_CHAIN_PROBLEM_CHECKPOINT_MISMATCH},
		{name: "tail cut, head left", attack: func(a *attacker) {
			a.exec(`DELETE FROM events WHERE sequence >= $1`, k)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_MISSING},
		{name: "tail cut and head moved back", checkpoints: []int{n}, attack: func(a *attacker) {
			a.exec(`DELETE FROM events WHERE sequence >= $1`, k)
			a.moveHead(k-1, a.event(k-1).Hash)
		}, wantSeq: k, want: auditv1.ChainProblem_CHAIN_PROBLEM_MISSING},
		{name: "prefix removed and the anchor moved, behind retention's back", checkpoints: []int{n}, attack: func(a *attacker) {
			a.exec(`UPDATE chain_head SET anchor_sequence = $1, anchor_hash = $2 WHERE id = 1`, k, a.event(k).Hash)
			a.exec(`DELETE FROM events WHERE sequence <= $1`, k)
		}, wantSeq: 1, want: auditv1.ChainProblem_CHAIN_PROBLEM_MISSING},
		{name: "head hash changed", attack: func(a *attacker) {
			a.moveHead(n, make([]byte, chain.Size))
		}, wantSeq: n, want: auditv1.ChainProblem_CHAIN_PROBLEM_CHANGED},
	}
	for _, d := range dbtest.Dialects {
		for _, c := range cases {
			t.Run(string(d)+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0",
					"AUDIT_SIGNING_KEY": tamperKeyFile(t), "AUDIT_CHECKPOINT_INTERVAL": "0", "AUDIT_RETENTION_DAYS": "0"}))
				cfg.DB = dbtest.Config(t, d)
				client := serveWith(t, cfg)
				appended := 0
				for _, at := range c.checkpoints {
					appendEvents(t, client, at-appended)
					checkpointNow(t, client, int64(at))
					appended = at
				}
				appendEvents(t, client, n-appended)
				if v := verify(t, client, 0, 0); !v.GetValid() || v.GetEventsChecked() != n || v.GetCheckpointsChecked() != int64(len(c.checkpoints)) {
					t.Fatalf("before the attack: %v", v)
				}
				a := newAttacker(t, cfg.DB)
				a.dropGuards()
				c.attack(a)
				v := verify(t, client, 0, 0)
				if v.GetFirstBadSequence() != c.wantSeq || v.GetProblem() != c.want || v.GetValid() != (c.wantSeq == 0) {
					t.Fatalf("got %d %v valid=%v (%s), want %d %v", v.GetFirstBadSequence(), v.GetProblem(), v.GetValid(), v.GetDetail(), c.wantSeq, c.want)
				}
				if strings.Contains(v.GetDetail(), "someone-else") || strings.Contains(v.GetDetail(), "intruder") || strings.Contains(v.GetDetail(), "agent-7") {
					t.Errorf("the detail quotes stored values: %s", v.GetDetail())
				}
			})
		}
	}
}

// TestVerifyChainRanges: through gRPC on each backend, a sub-range verifies against the event before it,
// a range beyond the head is clipped (and says so), the empty log verifies, and bad ranges are refused
// with INVALID_ARGUMENT.
func TestVerifyChainRanges(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			client, cfg := signedLog(t, d, 0)
			if v := verify(t, client, 0, 0); !v.GetValid() || v.GetStartSequence() != 1 || v.GetEndSequence() != 0 ||
				v.GetHeadSequence() != 0 || v.GetEventsChecked() != 0 || len(v.GetHeadHash()) != chain.Size || len(v.GetAnchorHash()) != chain.Size {
				t.Fatalf("empty log: %v", v)
			}
			appendEvents(t, client, tamperLen)
			checkpointNow(t, client, tamperLen)
			v := verify(t, client, 5, 12)
			if !v.GetValid() || v.GetStartSequence() != 5 || v.GetEndSequence() != 12 || v.GetEventsChecked() != 8 ||
				v.GetCheckpointsChecked() != 0 || v.GetHeadSequence() != tamperLen {
				t.Fatalf("5 to 12: %v", v)
			}
			v = verify(t, client, 15, 99)
			if !v.GetValid() || v.GetEndSequence() != tamperLen || v.GetEventsChecked() != 6 || v.GetCheckpointsChecked() != 1 ||
				!strings.Contains(v.GetDetail(), "ends at the chain head") {
				t.Fatalf("15 to 99: %v", v)
			}
			for _, r := range [][2]int64{{-1, 0}, {0, -1}, {9, 8}} {
				_, err := client.VerifyChain(context.Background(), &auditv1.VerifyChainRequest{StartSequence: r[0], EndSequence: r[1]})
				if status.Code(err) != codes.InvalidArgument {
					t.Errorf("%v: %v, want InvalidArgument", r, err)
				}
			}

			// A change before the sub-range is outside it; the event the range links to is not checked.
			a := newAttacker(t, cfg.DB)
			a.dropGuards()
			a.exec(`UPDATE events SET actor = 'someone-else' WHERE sequence = 3`)
			if v := verify(t, client, 5, 12); !v.GetValid() {
				t.Fatalf("5 to 12 with 3 changed: %v", v)
			}
			if v := verify(t, client, 4, 0); !v.GetValid() || v.GetEventsChecked() != tamperLen-3 {
				t.Fatalf("from 4 with 3 changed: %v", v)
			}
			if v := verify(t, client, 1, 12); v.GetFirstBadSequence() != 3 || v.GetProblem() != auditv1.ChainProblem_CHAIN_PROBLEM_CHANGED {
				t.Fatalf("1 to 12 with 3 changed: %v", v)
			}
			a.exec(`DELETE FROM events WHERE sequence = 4`)
			if v := verify(t, client, 5, 12); v.GetFirstBadSequence() != 4 || v.GetProblem() != auditv1.ChainProblem_CHAIN_PROBLEM_MISSING {
				t.Fatalf("5 to 12 with 4 deleted: %v", v)
			}
		})
	}
}

// TestVerifyChainLongLog: an untouched log of some thousands of events, and a checkpoint every thousand,
// verifies whole through gRPC on each backend (several pages of events and of checkpoints).
func TestVerifyChainLongLog(t *testing.T) {
	const n = 5000
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			client, _ := signedLog(t, d, 0)
			for i := 1; i <= n/1000; i++ {
				appendEvents(t, client, 1000)
				checkpointNow(t, client, int64(i*1000))
			}
			v := verify(t, client, 0, 0)
			if !v.GetValid() || v.GetEventsChecked() != n || v.GetCheckpointsChecked() != n/1000 || v.GetHeadSequence() != n {
				t.Fatalf("%v", v)
			}
		})
	}
}

// TestVerifyChainLimits shows what verification cannot see, so that a change that closes a gap updates
// this test and the README together: a rewrite of the events after the last checkpoint (re-hashed to
// the end, head moved) verifies; copies of checkpoints kept outside the database are the proof against
// it. A checkpoint re-signed by a key of the attacker's is caught: only the service's own key and those
// in AUDIT_PREVIOUS_SIGNING_KEY_IDS vouch for the chain.
func TestVerifyChainLimits(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			client, cfg := signedLog(t, d, 10)
			checkpointNow(t, client, 10)
			appendEvents(t, client, tamperLen-10)
			a := newAttacker(t, cfg.DB)
			a.dropGuards()
			a.rewriteFrom(12, tamperLen)
			if v := verify(t, client, 0, 0); !v.GetValid() {
				t.Fatalf("a rewrite after the last checkpoint is expected to verify: %v", v)
			}
			a.rewriteFrom(7, tamperLen)
			cs, err := a.st.CheckpointList(context.Background(), store.CheckpointListParams{Limit: 1})
			if err != nil || len(cs) != 1 {
				t.Fatalf("checkpoints: %v %v", cs, err)
			}
			c := cs[0]
			if v := verify(t, client, 0, 0); v.GetFirstBadSequence() != 10 || v.GetProblem() != auditv1.ChainProblem_CHAIN_PROBLEM_CHECKPOINT_MISMATCH {
				t.Fatalf("a rewrite under the checkpoint: %v", v)
			}
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			c.Hash, c.PublicKey, c.KeyID = a.event(10).Hash, pub, audit.KeyID(pub)
			c.SignedText = audit.SignedText(c)
			a.exec(`UPDATE checkpoints SET hash = $1, public_key = $2, key_id = $3, signed_text = $4, signature = $5`,
				c.Hash, c.PublicKey, c.KeyID, c.SignedText, ed25519.Sign(priv, []byte(c.SignedText)))
			// A key the service does not trust (neither its own nor in AUDIT_PREVIOUS_SIGNING_KEY_IDS)
			// vouches for nothing.
			if v := verify(t, client, 0, 0); v.GetFirstBadSequence() != 10 || v.GetProblem() != auditv1.ChainProblem_CHAIN_PROBLEM_CHECKPOINT_MISMATCH ||
				!strings.Contains(v.GetDetail(), "AUDIT_PREVIOUS_SIGNING_KEY_IDS") {
				t.Fatalf("a checkpoint re-signed by another key: %v", v)
			}
		})
	}
}
