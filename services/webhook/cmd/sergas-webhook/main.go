// Command sergas-webhook runs the webhook service on its own.
package main

import (
	"context"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/webhook"
)

func main() { app.Main(run) }

func run(ctx context.Context, env *config.Env, log *slog.Logger) error {
	cfg := webhook.LoadConfig(env)
	return app.RunStandalone(ctx, env, log, cfg.ServiceConfig, func(ctx context.Context, rt *app.Runtime) (app.Service, error) {
		return webhook.Open(ctx, cfg, log, webhook.Denials(rt), webhook.Tokens(rt), webhook.Audit(rt))
	})
}
