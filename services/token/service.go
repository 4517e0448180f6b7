package token

import (
	"context"
	"log/slog"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/store/postgres"
	"github.com/sergas/core/services/token/store/sqlite"
)

// DefaultAddr is where the token service listens unless TOKEN_GRPC_ADDR says otherwise.
const DefaultAddr = ":50051"

// Config is the token service's configuration.
type Config struct {
	app.ServiceConfig
}

// LoadConfig reads the token service's settings from env.
func LoadConfig(env *config.Env) Config {
	return Config{ServiceConfig: app.LoadServiceConfig(env, "token", DefaultAddr)}
}

// Policy is the scope each TokenService RPC needs.
var Policy = auth.Policy{Scopes: map[string]string{
	tokenv1.TokenService_CreateConnection_FullMethodName: auth.ScopeTokenAdmin,
	tokenv1.TokenService_DeleteConnection_FullMethodName: auth.ScopeTokenAdmin,
	tokenv1.TokenService_GetConnection_FullMethodName:    auth.ScopeTokenRead,
	tokenv1.TokenService_ListConnections_FullMethodName:  auth.ScopeTokenRead,
}}

// Open opens the service's database and returns the service ready to serve.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*app.StoreService, error) {
	st, err := app.OpenStore(ctx, cfg.ServiceConfig, log,
		func(d *db.SQLiteDB) store.Store { return sqlite.New(d) },
		func(d *db.PostgresDB) store.Store { return postgres.New(d) })
	if err != nil {
		return nil, err
	}
	return app.NewStoreService(st, Policy, &tokenv1.TokenService_ServiceDesc, NewServer(st)), nil
}
