package webhook

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// Placeholder until push delivery lands (issue #10, this session).

// RotateSigningSecret implements WebhookServiceServer.
func (s *Server) RotateSigningSecret(context.Context, *webhookv1.RotateSigningSecretRequest) (*webhookv1.RotateSigningSecretResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}
