// Command server is the benchmark's server process (package benchserver: the token service as
// sergas-token serves it, or with -service audit the audit service as sergas-audit serves it, plus a
// no-op RPC behind the same guard). It prints "ready <addr>" on stdout
// once it listens, and stops on SIGTERM. tools/bench starts it; it is not meant to be deployed.
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
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/tools/bench/internal/benchserver"
)

var (
	pprofAddr = flag.String("pprof", "", "serve net/http/pprof on this address (for profiling under load)")
	service   = flag.String("service", "token", "the service to serve: token or audit")
)

func main() {
	flag.Parse()
	app.Main(func(ctx context.Context, env *config.Env, log *slog.Logger) error {
		if *pprofAddr != "" {
			if err := servePprof(*pprofAddr); err != nil {
				return err
			}
		}
		ready := func(addr string) { fmt.Println("ready", addr) }
		switch *service {
		case "token":
			return benchserver.Run(ctx, env, log, ready)
		case "audit":
			return benchserver.RunAudit(ctx, env, log, ready)
		}
		return fmt.Errorf("unknown -service %q", *service)
	})
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
