package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/services/audit/store"
)

// maxConcurrentVerifications bounds the verifications a server runs at once: each reads the whole range
// from the database, and audit:read is the only gate, so a few callers could otherwise keep the
// database busy reading. Further calls wait their turn (within their deadline).
const maxConcurrentVerifications = 2

var (
	// verificationsTotal counts finished verifications by result, so that an alert can fire on a broken chain.
	verificationsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "audit_chain_verifications_total",
		Help: "VerifyChain calls that finished, by result: valid, or the problem found (changed, missing, inserted, out_of_order, checkpoint_mismatch).",
	}, []string{"result"})
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
	select {
	case s.verifications <- struct{}{}:
		defer func() { <-s.verifications }()
	case <-ctx.Done():
		return nil, ctx.Err() // mapped to CANCELLED or DEADLINE_EXCEEDED
	}
	v, err := store.Verify(ctx, s.store, store.VerifyParams{
		Start: req.GetStartSequence(), End: req.GetEndSequence(), CheckCheckpoint: s.checkCheckpoint,
	})
	if err != nil {
		return nil, err
	}
	verificationsTotal.WithLabelValues(verifyResult(v.Problem)).Inc()
	return &auditv1.VerifyChainResponse{
		Valid: v.Valid, StartSequence: v.Start, EndSequence: v.End,
		EventsChecked: v.EventsChecked, CheckpointsChecked: v.CheckpointsChecked,
		HeadSequence: v.HeadSeq, HeadHash: v.HeadHash, AnchorSequence: v.AnchorSeq, AnchorHash: v.AnchorHash,
		FirstBadSequence: v.FirstBad, Problem: chainProblems[v.Problem], Detail: v.Detail,
	}, nil
}

// verifyResult is the metric label of a verification's outcome.
func verifyResult(p store.Problem) string {
	if p == store.ProblemNone {
		return "valid"
	}
	name := auditv1.ChainProblem_name[int32(chainProblems[p])]
	return strings.ToLower(strings.TrimPrefix(name, "CHAIN_PROBLEM_"))
}

// checkCheckpoint is VerifyCheckpoint, and that a key this service trusts signed it: the checkpoint's
// stored public key alone proves nothing against whoever can write the database, who could re-sign
// checkpoints over a rewritten chain with a key of their own.
func (s *Server) checkCheckpoint(c *store.Checkpoint) error {
	if err := VerifyCheckpoint(c); err != nil {
		return err
	}
	if s.trustedKeys != nil && !s.trustedKeys[c.KeyID] {
		return fmt.Errorf("it is signed by key %s, which is neither this service's signing key nor in AUDIT_PREVIOUS_SIGNING_KEY_IDS", c.KeyID)
	}
	return nil
}

// trustedKeyIDs is the set of key ids VerifyChain accepts: the signing key's and those rotated away.
func trustedKeyIDs(key *signingKey, previous []string) map[string]bool {
	ids := map[string]bool{key.keyID: true}
	for _, id := range previous {
		ids[id] = true
	}
	return ids
}
