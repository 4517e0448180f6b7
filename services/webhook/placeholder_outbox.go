package webhook

import "github.com/sergas/core/internal/app"

// Placeholder until the webhook audit outbox sender lands (issue #10, this session).

// outboxWorkers send the audit outbox (placeholder: none).
func (s *Server) outboxWorkers() []app.Worker { return nil }
