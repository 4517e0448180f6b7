package benchserver

import (
	"context"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/tools/bench/internal/noop"
)

// auditService is the audit service with the no-op registered beside it; the no-op needs audit:write,
// the scope of RecordEvent, so that it spends the write class's budget as appends do.
type auditService struct{ *audit.Service }

func (s auditService) Register(srv *grpcserver.Server) {
	s.Service.Register(srv)
	srv.Register(&noop.Desc, noop.Impl)
}

func (s auditService) Policy() auth.Policy {
	return auth.Merge(s.Service.Policy(), noop.PolicyFor(auth.ScopeAuditWrite))
}

// RunAudit serves the audit service as sergas-audit does (the same platform, guard, limiter and
// background workers: the group committer runs) until ctx is done; ready receives the bound address.
func RunAudit(ctx context.Context, env *config.Env, log *slog.Logger, ready func(addr string)) error {
	cfg := audit.LoadConfig(env)
	platform := app.LoadPlatform(env)
	if err := env.Err(); err != nil {
		return err
	}
	rt, err := platform.Start(ctx, log)
	if err != nil {
		return err
	}
	svc, err := audit.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	// Background (the group committer) is promoted from *audit.Service through the embedding, so
	// app.Serve starts it as it does for sergas-audit.
	return app.Serve(ctx, cfg.ServiceConfig, rt, log, auditService{svc}, ready)
}
