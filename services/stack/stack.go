// Package stack runs the three services and the gateway in one process, for `make run` and end-to-end
// tests. Each part still talks to the others over real gRPC on loopback, exactly as separate binaries do.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/gateway"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
)

// Addrs are the bound addresses of a running stack.
type Addrs struct {
	Gateway, Token, Audit, Webhook string
	// DevKey is the development API key (development mode only).
	DevKey string
}

// Run starts everything, calls ready with the bound addresses, and serves until ctx is done. It stops
// the gateway first (so no request reaches a stopped service), then the services.
func Run(ctx context.Context, env *config.Env, log *slog.Logger, ready func(Addrs)) error {
	tokenCfg, auditCfg, webhookCfg := token.LoadConfig(env), audit.LoadConfig(env), webhook.LoadConfig(env)
	gwCfg := gateway.LoadConfig(env)
	platform := app.LoadPlatform(env)
	if err := env.Err(); err != nil {
		return err
	}
	rtCtx, stopRuntime := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuntime()
	rt, err := platform.Start(rtCtx, log)
	if err != nil {
		return err
	}
	tokenSvc, err := token.Open(ctx, tokenCfg, log, token.Recorder(rt))
	if err != nil {
		return err
	}
	auditSvc, err := audit.Open(ctx, auditCfg, log)
	if err != nil {
		tokenSvc.Close()
		return err
	}
	webhookSvc, err := webhook.Open(ctx, webhookCfg, log, webhook.Denials(rt), webhook.Tokens(rt), webhook.Audit(rt))
	if err != nil {
		tokenSvc.Close()
		auditSvc.Close()
		return err
	}

	svcCtx, stopServices := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServices()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	bound := make(chan string, 3)
	addrs := Addrs{DevKey: rt.Security.DevKey}
	start := func(cfg app.ServiceConfig, svc app.Service, addr *string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := app.Serve(svcCtx, cfg, rt, log, svc, func(a string) { *addr = a; bound <- a })
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", cfg.Name, err))
				mu.Unlock()
				bound <- "" // unblock the wait below
				stopServices()
			}
		}()
	}
	start(tokenCfg.ServiceConfig, tokenSvc, &addrs.Token)
	start(auditCfg.ServiceConfig, auditSvc, &addrs.Audit)
	start(webhookCfg.ServiceConfig, webhookSvc, &addrs.Webhook)
	for range 3 {
		if <-bound == "" {
			wg.Wait()
			return errors.Join(errs...)
		}
	}

	// The gateway and the denial log dial what the services actually bound, so overriding a service
	// address is enough.
	gwCfg.TokenEndpoint, gwCfg.AuditEndpoint, gwCfg.WebhookEndpoint = dialable(addrs.Token), dialable(addrs.Audit), dialable(addrs.Webhook)
	if err := rt.Connect(gwCfg.AuditEndpoint, gwCfg.TokenEndpoint); err != nil {
		stopServices()
		wg.Wait()
		return err
	}
	gw, err := gateway.New(svcCtx, gwCfg, log, rt.ClientCreds, rt.HTTPTLS)
	if err == nil {
		gwCtx, stopGateway := context.WithCancel(ctx)
		go func() { <-svcCtx.Done(); stopGateway() }() // a failing service stops the gateway too
		err = gw.Serve(gwCtx, func(a string) {
			addrs.Gateway = a
			if ready != nil {
				ready(addrs)
			}
		})
		stopGateway()
		gw.Close()
	}
	stopServices()
	wg.Wait()
	return errors.Join(append(errs, err)...)
}

// dialable turns a listen address such as ":50051" or "[::]:50051" into one a client can dial.
func dialable(addr string) string { return withHost(addr, "127.0.0.1") }

// Local turns a listen address into the address a user on this machine would type ("[::]:8080" becomes
// "localhost:8080").
func Local(addr string) string { return withHost(addr, "localhost") }

// withHost replaces an empty or unspecified (0.0.0.0, ::) host with host.
func withHost(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
		host = h
	}
	return net.JoinHostPort(host, port)
}
