package sergasctl_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	auditstore "github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/token"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

// healthDoc is health's --json output.
type healthDoc struct {
	Services []struct {
		Service, Database, Dialect, Error string
		SQLite                            *struct {
			FileBytes   int64    `json:"file_bytes"`
			PageCount   int64    `json:"page_count"`
			FreePages   *int64   `json:"free_pages"`
			JournalMode string   `json:"journal_mode"`
			WALBytes    *int64   `json:"wal_bytes"`
			Check       string   `json:"integrity_check"`
			Integrity   []string `json:"integrity"`
			OpenBy      []struct {
				PID     int
				Command string
			} `json:"open_by"`
			WAL *struct {
				Frames, Checkpointed int64
				Pinned               bool
				Readers              []struct{ PID int }
			}
		}
		Postgres *struct {
			DatabaseBytes int64 `json:"database_bytes"`
			SchemaBytes   int64 `json:"schema_bytes"`
			Tables        int
		}
		Token *struct {
			Connections int
			Needs       int      `json:"needs_reauthorization"`
			Reauthorize []string `json:"needs_reauthorization_connections"`
		}
		Audit *struct {
			HeadSequence   int64  `json:"head_sequence"`
			HeadHash       string `json:"head_hash"`
			LastCheckpoint *struct {
				ID, Sequence int64
				KeyID        string `json:"key_id"`
				EventsSince  int64  `json:"events_since"`
			} `json:"last_checkpoint"`
		}
		Webhook *struct {
			Backlog       int64      `json:"backlog_events"`
			Oldest        *time.Time `json:"oldest_undelivered"`
			Subscriptions []struct {
				ID, Name         string
				Pending, Leased  int64
				Failed           int64
				DeadLetter       int64      `json:"dead_letter"`
				OldestUndeliverd *time.Time `json:"oldest_undelivered"`
			}
		}
		Problems []string
		Advice   []string
	}
	OK       bool
	ExitCode int `json:"exit_code"`
}

func TestHealthReadsThroughTheStores(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup")

		// token: two connections stored by the service, one marked as needing re-authorisation (as a
		// refresh refused for good leaves it).
		svc, err := token.Open(ctx, token.LoadConfig(config.FromMap(e)), quietLog, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"crm-1", "crm-2"} {
			if _, err := svc.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: id,
				AccessToken: "at", RefreshToken: "rt", ExpiresIn: durationpb.New(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		svc.Close()
		execSQL(t, serviceDB(t, e, "token"), "UPDATE connections SET status = 2 WHERE connection_id = 'crm-2'")

		// audit: three events, a checkpoint, two more.
		as := auditStoreOf(serviceDB(t, e, "audit"))
		appendEvents := func(n int) {
			t.Helper()
			var ps []auditstore.Pending
			for range n {
				now := time.Now().UTC().Truncate(time.Microsecond)
				ps = append(ps, auditstore.Pending{Event: &auditstore.Event{ID: uuid.NewString(), OccurTime: now, RecordTime: now,
					Actor: "agent-1", Action: "crm.deal.update", Resource: "Deals/1", Outcome: 1, Metadata: "{}", Principal: "apikey:test"}})
			}
			if _, err := as.Append(ctx, ps); err != nil {
				t.Fatal(err)
			}
		}
		appendEvents(3)
		if _, err := as.CheckpointAppend(ctx, func(st auditstore.ChainState) (*auditstore.Checkpoint, error) {
			return &auditstore.Checkpoint{Sequence: st.HeadSeq, Hash: st.HeadHash, Time: time.Now().UTC().Truncate(time.Microsecond), Kind: 1,
				AnchorSeq: st.AnchorSeq, AnchorHash: st.AnchorHash, KeyID: "00000000000000ff", PublicKey: make([]byte, 32), SignedText: "fixture", Signature: make([]byte, 64)}, nil
		}); err != nil {
			t.Fatal(err)
		}
		appendEvents(2)

		// webhook: a subscription and two events owed to it.
		ws := webhookStoreOf(serviceDB(t, e, "webhook"))
		now := time.Now().UTC().Truncate(time.Microsecond)
		sub := &webhookstore.Subscription{ID: uuid.Must(uuid.NewV7()).String(), Name: "crm-sync",
			Retry:         webhookstore.RetryPolicy{MaxRetries: 5, BackoffBase: time.Second, BackoffCap: time.Minute},
			LeaseDuration: 30 * time.Second, State: webhookstore.SubscriptionActive, CreateTime: now, UpdateTime: now, Mode: webhookstore.SubscriptionPull}
		if err := ws.SubscriptionCreate(ctx, sub); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"k1", "k2"} {
			if _, _, err := ws.EventInsert(ctx, &webhookstore.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: key,
				Status: webhookstore.StatusPending, ContentType: "application/json", Payload: []byte(`{}`), ReceiveTime: now}); err != nil {
				t.Fatal(err)
			}
		}

		var doc healthDoc
		mustRun(t, e, 0, "health", "--json").decode(t, &doc)
		if !doc.OK || len(doc.Services) != 3 {
			t.Fatalf("health: %+v", doc)
		}
		for _, s := range doc.Services {
			if s.Error != "" || len(s.Problems) != 0 || s.Advice == nil || len(s.Advice) != 0 {
				t.Errorf("%s: error %q problems %v advice %v (want none, as an empty list)", s.Service, s.Error, s.Problems, s.Advice)
			}
			if d == db.SQLite {
				if s.SQLite == nil || s.SQLite.FileBytes <= 0 || s.SQLite.PageCount <= 0 || s.SQLite.FreePages == nil || s.SQLite.WALBytes == nil ||
					s.SQLite.JournalMode != "wal" || s.SQLite.Check != "quick_check" || strings.Join(s.SQLite.Integrity, ",") != "ok" {
					t.Errorf("%s sqlite figures: %+v", s.Service, s.SQLite)
				}
				if len(s.SQLite.OpenBy) != 0 {
					t.Errorf("%s: no other process has the file open, health says %+v", s.Service, s.SQLite.OpenBy)
				}
				if w := s.SQLite.WAL; w == nil || w.Pinned || w.Checkpointed != w.Frames || len(w.Readers) != 0 {
					t.Errorf("%s: a WAL no one reads is copied back whole by health's checkpoint: %+v", s.Service, w)
				}
			} else if s.Postgres == nil || s.Postgres.SchemaBytes <= 0 || s.Postgres.DatabaseBytes < s.Postgres.SchemaBytes || s.Postgres.Tables < 2 {
				t.Errorf("%s postgres figures: %+v", s.Service, s.Postgres)
			}
		}
		tok, aud, wh := doc.Services[0].Token, doc.Services[1].Audit, doc.Services[2].Webhook
		if tok == nil || tok.Connections != 2 || tok.Needs != 1 || len(tok.Reauthorize) != 1 || tok.Reauthorize[0] != "zoho/crm-2" {
			t.Errorf("token: %+v", tok)
		}
		if aud == nil || aud.HeadSequence != 5 || len(aud.HeadHash) != 64 || aud.LastCheckpoint == nil ||
			aud.LastCheckpoint.Sequence != 3 || aud.LastCheckpoint.EventsSince != 2 || aud.LastCheckpoint.KeyID != "00000000000000ff" {
			t.Errorf("audit: %+v (checkpoint %+v)", aud, aud.LastCheckpoint)
		}
		if wh == nil || wh.Backlog != 2 || wh.Oldest == nil || !wh.Oldest.Equal(now) || len(wh.Subscriptions) != 1 ||
			wh.Subscriptions[0].ID != sub.ID || wh.Subscriptions[0].Name != "crm-sync" || wh.Subscriptions[0].Pending != 2 {
			t.Errorf("webhook: %+v", wh)
		}

		// --full runs integrity_check; the text output says the same things.
		if d == db.SQLite {
			var full healthDoc
			mustRun(t, e, 0, "health", "--full", "--service", "audit", "--json").decode(t, &full)
			if s := full.Services[0].SQLite; s == nil || s.Check != "integrity_check" || strings.Join(s.Integrity, ",") != "ok" {
				t.Errorf("--full: %+v", s)
			}
		}
		r := mustRun(t, e, 0, "health")
		for _, want := range []string{"1 needing re-authorisation: zoho/crm-2", "chain head 5", "last checkpoint", "2 event(s) since",
			"backlog 2 event(s) to deliver", "subscription crm-sync (" + sub.ID + "): 2 pending"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("text output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
}

func TestHealthFailsOnCorruption(t *testing.T) {
	e := newEnv(t, db.SQLite)
	mustRun(t, e, 0, "setup", "--service", "webhook")
	h := serviceDB(t, e, "webhook")
	var root, pageSize int64
	if err := h.SQLite.Read.QueryRow("SELECT rootpage FROM sqlite_master WHERE name = 'events_receive_time'").Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := h.SQLite.Read.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	path := h.SQLite.Path
	h.Close() // checkpoints the WAL into the file and removes it
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The index's root page becomes garbage: a page of the wrong type.
	if _, err := f.WriteAt([]byte(strings.Repeat("\xee", int(pageSize))), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, args := range [][]string{{"health", "--service", "webhook", "--json"}, {"health", "--service", "webhook", "--full", "--json"}} {
		var doc healthDoc
		r := run(t, e, "", args...)
		r.decode(t, &doc)
		s := doc.Services[0]
		if r.code != 1 || doc.OK || s.SQLite == nil || strings.Join(s.SQLite.Integrity, ",") == "ok" || len(s.Problems) != 1 {
			t.Fatalf("%v on a corrupt index: exit %d\n%s", args, r.code, r.stdout)
		}
	}
}
