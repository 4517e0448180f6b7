package audit

import (
	"context"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

func contextRequest(actorType auditv1.ActorType, session, requestID, source string) *auditv1.RecordEventRequest {
	req := request(nil)
	req.ActorType, req.SessionId, req.RequestId, req.SourceService = actorType, session, requestID, source
	return req
}

// TestContextFieldsRoundTripAndFilter: RecordEvent and RecordEvents keep actor type, session, request id
// and source service; ListEvents filters by each; a retry with other context is another event's content.
func TestContextFieldsRoundTripAndFilter(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, _ store.Store, _ db.Dialect) {
		ctx := as("apikey:writer")
		one, err := s.RecordEvent(ctx, contextRequest(auditv1.ActorType_ACTOR_TYPE_AGENT, "sess-1", "trace-1", "sergas-token"))
		if err != nil {
			t.Fatal(err)
		}
		e := one.GetEvent()
		if e.GetActorType() != auditv1.ActorType_ACTOR_TYPE_AGENT || e.GetSessionId() != "sess-1" ||
			e.GetRequestId() != "trace-1" || e.GetSourceService() != "sergas-token" {
			t.Fatalf("recorded %v", e)
		}
		batch, err := s.RecordEvents(ctx, &auditv1.RecordEventsRequest{Events: []*auditv1.RecordEventRequest{
			contextRequest(auditv1.ActorType_ACTOR_TYPE_USER, "sess-2", "trace-1", "sergas-gateway"),
			contextRequest(auditv1.ActorType_ACTOR_TYPE_UNSPECIFIED, "", "", ""),
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := batch.GetResults()[0].GetEvent(); got.GetActorType() != auditv1.ActorType_ACTOR_TYPE_USER || got.GetSessionId() != "sess-2" {
			t.Fatalf("batch recorded %v", got)
		}
		for name, c := range map[string]struct {
			req  *auditv1.ListEventsRequest
			want []int64
		}{
			"actor type":     {&auditv1.ListEventsRequest{ActorType: auditv1.ActorType_ACTOR_TYPE_USER}, []int64{2}},
			"session":        {&auditv1.ListEventsRequest{SessionId: "sess-1"}, []int64{1}},
			"request id":     {&auditv1.ListEventsRequest{RequestId: "trace-1"}, []int64{1, 2}},
			"source service": {&auditv1.ListEventsRequest{SourceService: "sergas-gateway"}, []int64{2}},
			"outcome":        {&auditv1.ListEventsRequest{Outcome: auditv1.Outcome_OUTCOME_SUCCESS, Descending: true}, []int64{3, 2, 1}},
		} {
			resp, err := s.ListEvents(ctx, c.req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var got []int64
			for _, e := range resp.GetEvents() {
				got = append(got, e.GetSequence())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: got %v want %v", name, got, c.want)
			}
		}
		// The same idempotency key with other context is not a retry of the first event.
		first := contextRequest(auditv1.ActorType_ACTOR_TYPE_AGENT, "sess-1", "", "")
		first.IdempotencyKey = "k"
		if _, err := s.RecordEvent(ctx, first); err != nil {
			t.Fatal(err)
		}
		other := contextRequest(auditv1.ActorType_ACTOR_TYPE_AGENT, "sess-9", "", "")
		other.IdempotencyKey = "k"
		if _, err := s.RecordEvent(ctx, other); status.Code(err) != codes.AlreadyExists && errs.KindOf(err) != errs.KindAlreadyExists {
			t.Errorf("same key, other session: %v, want ALREADY_EXISTS", err)
		}
	})
}

// TestContextFieldsAreValidated: the new fields follow the rules of the other labels.
func TestContextFieldsAreValidated(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, _ store.Store, _ db.Dialect) { checkContextValidation(t, s) })
}

func checkContextValidation(t *testing.T, s *Server) {
	ctx := as("apikey:writer")
	long := strings.Repeat("x", maxContextBytes+1)
	for name, req := range map[string]*auditv1.RecordEventRequest{
		"unknown actor type":  contextRequest(auditv1.ActorType(9), "", "", ""),
		"long session":        contextRequest(0, long, "", ""),
		"session with escape": contextRequest(0, "s\x1b[2J", "", ""),
		"request id with NUL": contextRequest(0, "", "r\x00", ""),
		"long source service": contextRequest(0, "", "", long),
		"source with newline": contextRequest(0, "", "", "svc\nforged"),
		"invalid UTF-8":       contextRequest(0, "\xff", "", ""),
	} {
		if _, err := s.RecordEvent(ctx, req); errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	for name, req := range map[string]*auditv1.ListEventsRequest{
		"unknown actor type": {ActorType: auditv1.ActorType(9)},
		"long session":       {SessionId: long},
		"request id NUL":     {RequestId: "\x00"},
		"long source":        {SourceService: long},
	} {
		if _, err := s.ListEvents(ctx, req); errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("list %s: %v, want invalid", name, err)
		}
	}
	if _, err := s.RecordEvent(ctx, contextRequest(0, strings.Repeat("x", maxContextBytes), "", "")); err != nil {
		t.Errorf("a session id of the largest size: %v", err)
	}
}

// TestEventsFromBeforeContextFieldsStillVerify: a log written at migration 0002 (hash version 2), migrated
// to 0003 and appended to with version 3, verifies from end to end; its old event reads with empty context.
func TestEventsFromBeforeContextFieldsStillVerify(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			old := dbtest.OpenAtVersion(t, d, dbtest.Config(t, d), "audit", 2)
			h, sqldb := old.Handle, old.SQL
			timeArg := func(t time.Time) any { return t.UnixMicro() }
			if d == db.Postgres {
				timeArg = func(t time.Time) any { return t }
			}
			e := storetest.NewEvent("agent-old", "old.action", time.Now())
			e.HashVersion, e.Sequence, e.PreviousHash = chain.V2, 1, chain.Genesis
			e.Hash = chain.Hash(e.PreviousHash, e.Fields())
			if _, err := sqldb.ExecContext(ctx, `INSERT INTO events (sequence, id, occur_time, record_time, actor, action, resource,
					outcome, metadata, principal, hash_version, previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				e.Sequence, e.ID, timeArg(e.OccurTime), timeArg(e.RecordTime), e.Actor, e.Action, e.Resource, e.Outcome, e.Metadata,
				e.Principal, e.HashVersion, e.PreviousHash, e.Hash); err != nil {
				t.Fatal(err)
			}
			if _, err := sqldb.ExecContext(ctx, `UPDATE chain_head SET sequence = 1, hash = $1 WHERE id = 1`, e.Hash); err != nil {
				t.Fatal(err)
			}
			old.Upgrade(t)
			var st store.Store
			if d == db.SQLite {
				st = sqlite.New(h.SQLite)
			} else {
				st = postgres.New(h.Postgres)
			}
			s := NewServer(st, DefaultLimits)
			if _, err := s.RecordEvent(as("apikey:new"), contextRequest(auditv1.ActorType_ACTOR_TYPE_SERVICE, "s", "r", "svc")); err != nil {
				t.Fatal(err)
			}
			es, err := st.EventList(ctx, store.EventListParams{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 2 || es[0].HashVersion != chain.V2 || es[0].SessionID != "" || es[1].HashVersion != chain.V3 || es[1].SourceService != "svc" {
				t.Fatalf("events after the upgrade: %+v %+v", es[0], es[len(es)-1])
			}
			storetest.VerifyChain(t, es)
		})
	}
}

// TestMigration0003Reverts: the down migration removes the columns and indexes, and up applies again.
func TestMigration0003Reverts(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			fsys, ms := dbtest.Migrations(t, d, "audit")
			down, err := fs.ReadFile(fsys, "0003_event_context.down.sql")
			if err != nil {
				t.Fatal(err)
			}
			h := dbtest.Open(t, d, "audit")
			sqldb := h.SQL()
			if d == db.Postgres {
				defer sqldb.Close()
			}
			if _, err := sqldb.ExecContext(ctx, string(down)); err != nil {
				t.Fatalf("down: %v", err)
			}
			if _, err := sqldb.ExecContext(ctx, ms[2].Up); err != nil {
				t.Fatalf("up after down: %v", err)
			}
		})
	}
}
