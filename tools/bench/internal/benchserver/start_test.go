package benchserver_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sergas/core/internal/config"
)

// runner is benchserver.Run or benchserver.RunAudit.
type runner func(ctx context.Context, env *config.Env, log *slog.Logger, ready func(addr string)) error

// startBench serves run with env until the test ends (checking that it stops cleanly) and returns a
// context bounded by a minute and a connection to the server.
func startBench(t *testing.T, env *config.Env, run runner) (context.Context, *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	srvCtx, stop := context.WithCancel(ctx)
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(srvCtx, env, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("bench server: %v", err)
	case <-ctx.Done():
		t.Fatal("bench server not listening within a minute")
	}
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("bench server stopped with %v", err)
		}
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ctx, conn
}
