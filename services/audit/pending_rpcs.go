package audit

// Temporary while issue #8 items 6-8 land (removed before the session ends): each helper replaces its
// methods with the real ones in its own file.

import (
	"context"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
)

var errPending = errs.New(errs.KindUnavailable, "not available yet")

func (s *Server) VerifyChain(context.Context, *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
	return nil, errPending
}
