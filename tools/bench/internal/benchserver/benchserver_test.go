package benchserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/tools/bench/internal/benchserver"
	"github.com/sergas/core/tools/bench/internal/noop"
)

// TestNoopPaysForTheSameGuardAsGetAccessToken: the benchmark's baseline is only honest if it is refused
// without credentials and without token:read, and spends the same per-credential budget as
// GetAccessToken (the old baseline, the public health check, did none of this).
func TestNoopPaysForTheSameGuardAsGetAccessToken(t *testing.T) {
	readKey, _ := auth.NewAPIKey("bench")
	adminKey, _ := auth.NewAPIKey("bench-admin")
	env := config.FromMap(map[string]string{
		"SERGAS_ENV": "production", "DATA_DIR": t.TempDir(), "TLS_DISABLED": "true", "TOKEN_GRPC_ADDR": "127.0.0.1:0",
		"AUTH_API_KEYS": fmt.Sprintf(`{"keys":[{"id":"bench","sha256":%q,"scopes":["token:read"]},{"id":"bench-admin","sha256":%q,"scopes":["token:admin"]}]}`,
			auth.HashAPIKey(readKey), auth.HashAPIKey(adminKey)),
		"RATE_LIMIT_READ_PER_SECOND": "1", "RATE_LIMIT_READ_BURST": "3",
		"TOKEN_ENCRYPTION_KEYS": "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "TOKEN_REFRESHER_INTERVAL": "0",
	})
	ctx, conn := startBench(t, env, benchserver.Run)
	as := func(key string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	tc := tokenv1.NewTokenServiceClient(conn)
	if _, err := tc.CreateConnection(as(adminKey), &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "bench",
		AccessToken: "1000.bench.access", ExpiresIn: durationpb.New(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	get := func() error {
		_, err := tc.GetAccessToken(as(readKey), &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "bench"})
		return err
	}

	if err := noop.Call(ctx, conn); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no-op without credentials: %v", err)
	}
	if err := noop.Call(as(adminKey), conn); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("no-op without token:read: %v", err)
	}
	if err := get(); err != nil {
		t.Fatalf("GetAccessToken within the budget: %v", err)
	}
	if err := noop.Call(as(readKey), conn); err != nil {
		t.Fatalf("no-op within the budget: %v", err)
	}
	// Spend the rest of the read budget with no-ops (bounded: the burst is 3, refilled at 1/s)...
	limited := false
	for range 20 {
		if err := noop.Call(as(readKey), conn); status.Code(err) == codes.ResourceExhausted {
			limited = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !limited {
		t.Fatal("the no-op was never rate limited")
	}
	// ...and GetAccessToken, which shares it, is refused too.
	if err := get(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("GetAccessToken after the no-op spent the budget: %v", err)
	}
}
