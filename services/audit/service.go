package audit

import (
	"context"
	"log/slog"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
)

// DefaultAddr is where the audit service listens unless AUDIT_GRPC_ADDR says otherwise.
const DefaultAddr = ":50052"

// Config is the audit service's configuration.
type Config struct {
	app.ServiceConfig
	Limits Limits
}

// LoadConfig reads the audit service's settings from env.
func LoadConfig(env *config.Env) Config {
	return Config{
		ServiceConfig: app.LoadServiceConfig(env, "audit", DefaultAddr),
		Limits: Limits{
			MaxClockSkew: env.Duration("AUDIT_MAX_CLOCK_SKEW", DefaultLimits.MaxClockSkew, 0, 24*time.Hour),
			MaxEventAge:  env.Duration("AUDIT_MAX_EVENT_AGE", DefaultLimits.MaxEventAge, time.Minute, 10*365*24*time.Hour),
		},
	}
}

// Policy is the scope each AuditService RPC needs.
var Policy = auth.Policy{Scopes: map[string]string{
	auditv1.AuditService_RecordEvent_FullMethodName: auth.ScopeAuditWrite,
	auditv1.AuditService_GetEvent_FullMethodName:    auth.ScopeAuditRead,
	auditv1.AuditService_ListEvents_FullMethodName:  auth.ScopeAuditRead,
}}

// Open opens the service's database and returns the service ready to serve.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*app.StoreService, error) {
	st, err := app.OpenStore(ctx, cfg.ServiceConfig, log,
		func(d *db.SQLiteDB) store.Store { return sqlite.New(d) },
		func(d *db.PostgresDB) store.Store { return postgres.New(d) })
	if err != nil {
		return nil, err
	}
	return app.NewStoreService(st, Policy, &auditv1.AuditService_ServiceDesc, NewServer(st, cfg.Limits)), nil
}
