// Package benchserver is the benchmark's server: the token service exactly as sergas-token serves it
// (internal/app: the same guard, interceptors and rate limiter, configured from the environment), plus
// the no-op RPC of package noop, which needs token:read, so that the baseline pays for the same
// authentication, scope check and limiter as GetAccessToken.
package benchserver

import (
	"context"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/tools/bench/internal/noop"
)

// service is the token service with the no-op registered beside it.
type service struct{ *token.Service }

func (s service) Register(srv *grpcserver.Server) {
	s.Service.Register(srv)
	srv.Register(&noop.Desc, noop.Impl)
}

func (s service) Policy() auth.Policy { return auth.Merge(s.Service.Policy(), noop.Policy) }

// Run serves until ctx is done; ready receives the bound address once the listener is open.
func Run(ctx context.Context, env *config.Env, log *slog.Logger, ready func(addr string)) error {
	cfg := token.LoadConfig(env)
	platform := app.LoadPlatform(env)
	if err := env.Err(); err != nil {
		return err
	}
	rt, err := platform.Start(ctx, log)
	if err != nil {
		return err
	}
	svc, err := token.Open(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg.ServiceConfig, rt, log, service{svc}, ready)
}
