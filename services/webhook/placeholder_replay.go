package webhook

import (
	"context"

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
