package webhook

import (
	"context"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// Placeholder until ReplayEvents and PurgeEvents land (issue #10, this session).

// ReplayEvents implements WebhookServiceServer.
func (s *Server) ReplayEvents(context.Context, *webhookv1.ReplayEventsRequest) (*webhookv1.ReplayEventsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

// PurgeEvents implements WebhookServiceServer.
func (s *Server) PurgeEvents(context.Context, *webhookv1.PurgeEventsRequest) (*webhookv1.PurgeEventsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

// RetentionConfig is how old events are purged (placeholder).
type RetentionConfig struct{}

// LoadRetentionConfig reads the retention settings (placeholder).
func LoadRetentionConfig(*config.Env) RetentionConfig { return RetentionConfig{} }

// purgeWorkers purge old events (placeholder: none).
func (s *Server) purgeWorkers() []app.Worker { return nil }
