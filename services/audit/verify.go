package audit

import (
	"context"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/services/audit/store"
)

// chainProblems maps the store's problems to the contract's (the numbers are the same; the map makes a
// mismatch a test failure rather than a wrong answer).
var chainProblems = map[store.Problem]auditv1.ChainProblem{
	store.ProblemNone:               auditv1.ChainProblem_CHAIN_PROBLEM_UNSPECIFIED,
	store.ProblemChanged:            auditv1.ChainProblem_CHAIN_PROBLEM_CHANGED,
	store.ProblemMissing:            auditv1.ChainProblem_CHAIN_PROBLEM_MISSING,
	store.ProblemInserted:           auditv1.ChainProblem_CHAIN_PROBLEM_INSERTED,
	store.ProblemOutOfOrder:         auditv1.ChainProblem_CHAIN_PROBLEM_OUT_OF_ORDER,
	store.ProblemCheckpointMismatch: auditv1.ChainProblem_CHAIN_PROBLEM_CHECKPOINT_MISMATCH,
}

// VerifyChain implements auditv1.AuditServiceServer: store.Verify over the range asked, each checkpoint
// checked on its own as a third party would (VerifyCheckpoint: its key id names its key, its signed
// text holds its fields, the signature verifies) before it is compared with the chain. A range beyond
// the head is clipped to it, and the detail says so; a broken chain is an answer (valid false), not an
// error.
func (s *Server) VerifyChain(ctx context.Context, req *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
	v, err := store.Verify(ctx, s.store, store.VerifyParams{
		Start: req.GetStartSequence(), End: req.GetEndSequence(), CheckCheckpoint: VerifyCheckpoint,
	})
	if err != nil {
		return nil, err
	}
	return &auditv1.VerifyChainResponse{
		Valid: v.Valid, StartSequence: v.Start, EndSequence: v.End,
		EventsChecked: v.EventsChecked, CheckpointsChecked: v.CheckpointsChecked,
		HeadSequence: v.HeadSeq, HeadHash: v.HeadHash, AnchorSequence: v.AnchorSeq, AnchorHash: v.AnchorHash,
		FirstBadSequence: v.FirstBad, Problem: chainProblems[v.Problem], Detail: v.Detail,
	}, nil
}
