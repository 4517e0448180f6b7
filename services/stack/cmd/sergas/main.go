// Command sergas runs the whole of Sergas Core in one process: the token, audit and webhook services and
// the REST gateway. With no configuration it keeps its data in SQLite files under ./data.
package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/stack"
)

func main() { app.Main(run) }

func run(ctx context.Context, env *config.Env, log *slog.Logger) error {
	return stack.Run(ctx, env, log, func(a stack.Addrs) {
		fmt.Printf(`
Sergas Core is running (Ctrl-C stops it).
  REST gateway   http://%s   (/readyz, /metrics, /openapi.json, POST /webhooks/{source})
  token  gRPC    %s
  audit  gRPC    %s
  webhook gRPC   %s
`, stack.Local(a.Gateway), stack.Local(a.Token), stack.Local(a.Audit), stack.Local(a.Webhook))
		if a.DevKey != "" {
			fmt.Printf(`
Development API key (every scope; kept in $DATA_DIR/dev-api-key, mode 0600):
  export SERGAS_KEY=%s
  curl -H "Authorization: Bearer $SERGAS_KEY" …      grpcurl -H "authorization: Bearer $SERGAS_KEY" …
`, a.DevKey)
		}
		fmt.Println()
	})
}
