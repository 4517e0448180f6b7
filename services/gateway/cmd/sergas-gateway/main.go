// Command sergas-gateway runs the REST gateway on its own, dialing the services at their endpoints.
package main

import (
	"context"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/tlsconf"
	"github.com/sergas/core/services/gateway"
)

func main() { app.Main(run) }

func run(ctx context.Context, env *config.Env, log *slog.Logger) error {
	cfg := gateway.LoadConfig(env)
	tlsCfg := tlsconf.LoadConfig(env, app.Development(env))
	if err := env.Err(); err != nil {
		return err
	}
	creds, err := tlsCfg.Client(log)
	if err != nil {
		return err
	}
	httpTLS, err := tlsCfg.Server(false, log)
	if err != nil {
		return err
	}
	g, err := gateway.New(ctx, cfg, log, creds, httpTLS)
	if err != nil {
		return err
	}
	defer g.Close()
	return g.Serve(ctx, nil)
}
