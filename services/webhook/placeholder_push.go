package webhook

import (
	"context"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// Placeholder until push delivery lands (issue #10, this session).

// RotateSigningSecret implements WebhookServiceServer.
func (s *Server) RotateSigningSecret(context.Context, *webhookv1.RotateSigningSecretRequest) (*webhookv1.RotateSigningSecretResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

// PushConfig is how push subscriptions are delivered (placeholder).
type PushConfig struct{}

// LoadPushConfig reads the push settings (placeholder).
func LoadPushConfig(*config.Env) PushConfig { return PushConfig{} }

// pushWorkers are the push delivery workers (placeholder: none).
func (s *Server) pushWorkers() []app.Worker { return nil }
