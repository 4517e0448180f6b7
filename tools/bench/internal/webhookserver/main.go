// Command webhookserver is the webhook benchmark's server process: with -role webhook the webhook
// service exactly as sergas-webhook serves it (the same platform, guard, limiters and background workers,
// so the group committer runs), with -role gateway the REST gateway as sergas-gateway serves it. Each
// prints "ready <addr>" on stdout once it listens and stops on SIGTERM. tools/bench starts one of each;
// it is not meant to be deployed.
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
	"github.com/sergas/core/internal/tlsconf"
	"github.com/sergas/core/services/gateway"
	"github.com/sergas/core/services/webhook"
)

var (
	pprofAddr = flag.String("pprof", "", "serve net/http/pprof on this address (for profiling under load)")
	role      = flag.String("role", "webhook", "webhook (the webhook service) or gateway (the REST gateway)")
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
		switch *role {
		case "webhook":
			return runWebhook(ctx, env, log, ready)
		case "gateway":
			return runGateway(ctx, env, log, ready)
		}
		return fmt.Errorf("unknown -role %q", *role)
	})
}

// runWebhook serves the webhook service as sergas-webhook does (app.RunStandalone without its signal
// handling, which app.Main already does), reporting the bound address.
func runWebhook(ctx context.Context, env *config.Env, log *slog.Logger, ready func(string)) error {
	cfg := webhook.LoadConfig(env)
	platform := app.LoadPlatform(env)
	if err := env.Err(); err != nil {
		return err
	}
	rt, err := platform.Start(ctx, log)
	if err != nil {
		return err
	}
	svc, err := webhook.Open(ctx, cfg, log, webhook.Denials(rt), webhook.Audit(rt))
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg.ServiceConfig, rt, log, svc, ready)
}

// runGateway serves the gateway as sergas-gateway does, reporting the bound address.
func runGateway(ctx context.Context, env *config.Env, log *slog.Logger, ready func(string)) error {
	cfg := gateway.LoadConfig(env)
	tlsCfg := tlsconf.LoadConfig(env, app.Development(env))
	if err := env.Err(); err != nil {
		return err
	}
	creds, err := tlsCfg.Client(log)
	if err != nil {
		return err
	}
	httpTLS, err := tlsCfg.Server(false, log)
	if err != nil {
		return err
	}
	g, err := gateway.New(ctx, cfg, log, creds, httpTLS)
	if err != nil {
		return err
	}
	defer g.Close()
	return g.Serve(ctx, ready)
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
