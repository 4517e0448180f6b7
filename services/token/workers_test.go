package token_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/services/token"
)

// startWorkers runs svc's background work as app.Serve does, and returns what stops it; the service
// must be closed only after (Serve's order).
func startWorkers(t *testing.T, svc *token.Service, log *slog.Logger) (stop func()) {
	t.Helper()
	ws, err := app.StartWorkers(context.Background(), log, svc.Background())
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		if late := ws.Stop(10 * time.Second); len(late) > 0 {
			t.Errorf("workers still running after 10 s: %v", late)
		}
	}
}

// openRunning opens a token service with its background work running, both stopped at cleanup.
func openRunning(t *testing.T, cfg token.Config, log *slog.Logger, audit token.AuditRecorder) *token.Service {
	t.Helper()
	svc, err := token.Open(context.Background(), cfg, log, audit)
	if err != nil {
		t.Fatal(err)
	}
	stop := startWorkers(t, svc, log)
	t.Cleanup(func() { stop(); svc.Close() })
	return svc
}
