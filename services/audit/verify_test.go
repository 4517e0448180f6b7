package audit

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/audit/store"
)

// TestChainProblemsMatchTheContract: every ChainProblem of the contract has its store problem, with the
// same number.
func TestChainProblemsMatchTheContract(t *testing.T) {
	if len(chainProblems) != len(auditv1.ChainProblem_name) {
		t.Fatalf("%d problems mapped, the contract has %d", len(chainProblems), len(auditv1.ChainProblem_name))
	}
	for p, want := range chainProblems {
		if int32(p) != int32(want) {
			t.Errorf("store problem %d maps to %v", p, want)
		}
	}
	for n := range auditv1.ChainProblem_name {
		if _, ok := chainProblems[store.Problem(n)]; !ok {
			t.Errorf("contract problem %d has no store problem", n)
		}
	}
}

// changedStore hands out event 7 with another actor, as a database changed underneath would.
type changedStore struct{ store.Store }

func (c changedStore) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	es, err := c.Store.EventList(ctx, p)
	for i, e := range es {
		if e.Sequence == 7 {
			changed := *e
			changed.Actor = "someone-else"
			es[i] = &changed
		}
	}
	return es, err
}

// TestVerifyChainOverREST: POST /v1/audit/chain:verify through the real gateway on both backends answers
// the verification as JSON (a valid log, a changed event named, a bad range refused with 400).
func TestVerifyChainOverREST(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		for range 20 {
			if _, err := s.RecordEvent(as("apikey:w1"), request(nil)); err != nil {
				t.Fatal(err)
			}
		}
		base := serveGateway(t, grpcServe(t, s))
		post := func(body string) (int, map[string]any) {
			t.Helper()
			resp, err := http.Post(base+"/v1/audit/chain:verify", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, out
		}
		code, out := post(`{}`)
		if code != http.StatusOK || out["valid"] != true || out["eventsChecked"] != "20" || out["headSequence"] != "20" || out["endSequence"] != "20" {
			t.Fatalf("%d %v", code, out)
		}
		if code, out := post(`{"startSequence": "5", "endSequence": "3"}`); code != http.StatusBadRequest {
			t.Fatalf("a bad range: %d %v", code, out)
		}
		s.store = changedStore{st}
		code, out = post(`{"startSequence": "2"}`)
		if code != http.StatusOK || out["valid"] == true || out["firstBadSequence"] != "7" || out["problem"] != "CHAIN_PROBLEM_CHANGED" {
			t.Fatalf("event 7 changed: %d %v", code, out)
		}
		if d, _ := out["detail"].(string); strings.Contains(d, "someone-else") || !strings.Contains(d, "7") {
			t.Fatalf("detail: %q", d)
		}
	})
}

// TestVerificationsAreCountedByResult: a valid chain and a changed one each count under their result, so
// that an alert can watch audit_chain_verifications_total{result!="valid"}.
func TestVerificationsAreCountedByResult(t *testing.T) {
	if got := verifyResult(store.ProblemNone); got != "valid" {
		t.Fatalf("valid chain counted as %q", got)
	}
	for p, want := range map[store.Problem]string{
		store.ProblemChanged: "changed", store.ProblemMissing: "missing", store.ProblemInserted: "inserted",
		store.ProblemOutOfOrder: "out_of_order", store.ProblemCheckpointMismatch: "checkpoint_mismatch",
	} {
		if got := verifyResult(p); got != want {
			t.Errorf("problem %v counted as %q, want %q", p, got, want)
		}
	}
}
