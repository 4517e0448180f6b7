package audit

import (
	"testing"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
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
