// Command sergas-token runs the token service on its own.
//
//	sergas-token          serve
//	sergas-token reseal   re-seal every stored secret under the primary key of TOKEN_ENCRYPTION_KEYS
//	                      (safe while the service runs; prints how many rows it re-sealed)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/token"
)

func main() { app.Main(run) }

func run(ctx context.Context, env *config.Env, log *slog.Logger) error {
	cfg := token.LoadConfig(env)
	if len(os.Args) > 1 {
		if os.Args[1] != "reseal" {
			return fmt.Errorf("unknown command %q (commands: reseal)", os.Args[1])
		}
		if err := env.Err(); err != nil {
			return err
		}
		n, err := token.Reseal(ctx, cfg, log)
		if err != nil {
			return err
		}
		fmt.Printf("re-sealed %d connection(s) under the primary key\n", n)
		return nil
	}
	return app.RunStandalone(ctx, env, log, cfg.ServiceConfig, func(ctx context.Context, rt *app.Runtime) (app.Service, error) {
		return token.Open(ctx, cfg, log, token.Recorder(rt))
	})
}
