// Command sergas-token runs the token service on its own.
package main

import (
	"context"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/token"
)

func main() { app.Main(run) }

func run(ctx context.Context, env *config.Env, log *slog.Logger) error {
	cfg := token.LoadConfig(env)
	return app.RunStandalone(ctx, env, log, cfg.ServiceConfig, func(ctx context.Context) (app.Service, error) {
		return token.Open(ctx, cfg, log)
	})
}
