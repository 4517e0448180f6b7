package webhook

import "github.com/sergas/core/internal/app"

// Placeholder until TestOpenRunsTheGroupCommitter (commit_test.go) accepts more workers than the group
// committer and the channel renewer: the push workers are built (newPushWorkers, push_worker.go) but not
// yet declared to the platform.

// pushWorkers are the push delivery workers (placeholder: none yet).
func (s *Server) pushWorkers() []app.Worker { return nil }
