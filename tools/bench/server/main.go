// Command server is the benchmark's server process: the token service exactly as sergas-token serves it
// (internal/app: the same guard, interceptors and rate limiter, configured from the environment), plus a
// no-op RPC that needs token:read, so that the baseline pays for the same authentication, scope check and
// limiter as GetAccessToken. It prints "ready <addr>" on stdout once it listens, and stops on SIGTERM.
//
// tools/bench starts it; it is not meant to be deployed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/tools/bench/internal/noop"
)

var pprofAddr = flag.String("pprof", "", "serve net/http/pprof on this address (for profiling under load)")

func main() {
	flag.Parse()
	app.Main(run)
}

// benchService is the token service with the no-op registered beside it.
type benchService struct{ *token.Service }

func (s benchService) Register(srv *grpcserver.Server) {
	s.Service.Register(srv)
	srv.Register(&noop.Desc, noop.Impl)
}

func (s benchService) Policy() auth.Policy { return auth.Merge(s.Service.Policy(), noop.Policy) }

func run(ctx context.Context, env *config.Env, log *slog.Logger) error {
	cfg := token.LoadConfig(env)
	platform := app.LoadPlatform(env)
	if err := env.Err(); err != nil {
		return err
	}
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr); err != nil {
			return err
		}
	}
	rt, err := platform.Start(ctx, log)
	if err != nil {
		return err
	}
	svc, err := token.Open(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg.ServiceConfig, rt, log, benchService{svc}, func(addr string) { fmt.Println("ready", addr) })
}

func servePprof(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	return nil
}
