package app

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/sergas/core/internal/auditclient"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/tlsconf"
	"github.com/sergas/core/internal/tokenclient"
)

// Platform is the process-wide security configuration shared by every service a process hosts.
type Platform struct {
	// Development (SERGAS_ENV=development, set by `make run`) allows plaintext and creates a development
	// API key; anything else is production, where TLS and authentication must be configured or
	// explicitly disabled.
	Development bool
	Auth        auth.Config
	TLS         tlsconf.Config
	// AuditEndpoint and AuditClientKey are how services deliver auth.denied events to the audit service.
	AuditEndpoint  string
	AuditClientKey string
	// TokenEndpoint and TokenClientKey are how a service reaches the token service for a connection's
	// access token (the webhook service, for Zoho CRM notification channels).
	TokenEndpoint  string
	TokenClientKey string
	// TrustedProxies are the peers (the gateway) whose x-sergas-client-ip report the services believe.
	TrustedProxies clientaddr.Trusted
	// DenialInterval is how often anonymous and rate-limit refusals are summed up into audit events.
	DenialInterval time.Duration
}

// LoadPlatform reads SERGAS_ENV and the security settings.
func LoadPlatform(env *config.Env) Platform {
	dev := Development(env)
	p := Platform{
		Development:    dev,
		Auth:           auth.LoadConfig(env, dev),
		TLS:            tlsconf.LoadConfig(env, dev),
		AuditEndpoint:  env.String("AUDIT_GRPC_ENDPOINT", "localhost:50052"),
		AuditClientKey: env.String("AUDIT_CLIENT_API_KEY", ""),
		TokenEndpoint:  env.String("TOKEN_GRPC_ENDPOINT", "localhost:50051"),
		TokenClientKey: env.String("TOKEN_CLIENT_API_KEY", ""),
		TrustedProxies: clientaddr.LoadProxies(env, dev),
		DenialInterval: env.Duration("AUDIT_DENIAL_INTERVAL", auditclient.DefaultInterval, 10*time.Millisecond, time.Hour),
	}
	p.Auth.InternalKeys = []string{p.AuditClientKey, p.TokenClientKey}
	return p
}

// Development reports whether SERGAS_ENV=development (the default is production).
func Development(env *config.Env) bool {
	return env.OneOf("SERGAS_ENV", "production", "production", "development") == "development"
}

// Runtime is the platform made ready: loaded keys, TLS configurations and the denial log.
type Runtime struct {
	Security *auth.Security
	// ServerTLS is for gRPC listeners (client certificates required when a client CA is set); HTTPTLS
	// for the gateway's listener (never requires them). Both nil for plaintext.
	ServerTLS, HTTPTLS *tls.Config
	// ClientCreds dial the services.
	ClientCreds credentials.TransportCredentials
	// Audit reaches the audit service (connected once its address is known); nil without a credential.
	Audit *auditclient.Client
	// Denials delivers refused calls to the audit service; nil when Audit is.
	Denials *auditclient.Denials
	// Tokens reaches the token service (connected once its address is known); nil without a credential.
	Tokens *tokenclient.Client
	// TrustedProxies are the peers whose report of the client's address is believed.
	TrustedProxies clientaddr.Trusted
}

// Start loads keys and certificates and starts the denial log (which sends nothing until connected).
func (p Platform) Start(ctx context.Context, log *slog.Logger) (*Runtime, error) {
	sec, err := p.Auth.Build(log)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Security: sec, TrustedProxies: p.TrustedProxies}
	clientaddr.LogWarning(log, p.TrustedProxies)
	if rt.ServerTLS, err = p.TLS.Server(true, log); err != nil {
		return nil, err
	}
	if rt.HTTPTLS, err = p.TLS.Server(false, log); err != nil {
		return nil, err
	}
	if rt.ClientCreds, err = p.TLS.Client(log); err != nil {
		return nil, err
	}
	if rt.ServerTLS == nil && !p.Development {
		log.Warn("TLS_DISABLED=true: gRPC and HTTP listeners are plaintext; only do this behind a sidecar that terminates mTLS")
	}
	key := p.AuditClientKey
	if key == "" {
		key = sec.InternalKey
	}
	if key != "" || p.TLS.ClientCertFile != "" || p.Auth.Disabled {
		rt.Audit = auditclient.NewClient(key)
		rt.Denials = auditclient.NewDenials(log, rt.Audit, auditclient.DenialConfig{Interval: p.DenialInterval})
		go rt.Denials.Run(ctx)
	} else {
		log.Info("no audit credential: refused calls and token events are not sent to the audit log: set AUDIT_CLIENT_API_KEY (a key with audit:write)")
	}
	tokenKey := p.TokenClientKey
	if tokenKey == "" {
		tokenKey = sec.InternalKey
	}
	if tokenKey != "" || p.TLS.ClientCertFile != "" || p.Auth.Disabled {
		rt.Tokens = tokenclient.New(tokenKey)
	}
	if !p.Development && !p.Auth.Disabled && p.AuditClientKey == "" && p.TLS.ClientCertFile == "" {
		// In production the audit trail is the point: say so at the level operators alert on.
		log.Error("AUDIT IS INCOMPLETE: AUDIT_CLIENT_API_KEY is not set, so refused calls (auth.denied) and token events will NOT reach the audit log; set it to a key with audit:write")
	}
	return rt, nil
}

// Connect dials the audit and token services, for the clients the runtime has.
func (rt *Runtime) Connect(auditEndpoint, tokenEndpoint string) error {
	if rt.Audit != nil {
		if err := rt.Audit.Connect(auditEndpoint, rt.ClientCreds); err != nil {
			return err
		}
	}
	if rt.Tokens != nil {
		return rt.Tokens.Connect(tokenEndpoint, rt.ClientCreds)
	}
	return nil
}

// sink returns the denial sink as an interface, nil when there is none.
func (rt *Runtime) sink() auth.DenialSink {
	if rt.Denials == nil {
		return nil
	}
	return rt.Denials
}

// RunStandalone runs one service as its own process: it reads the platform settings, fails on any bad
// variable, opens the service and serves it until ctx is done.
func RunStandalone(ctx context.Context, env *config.Env, log *slog.Logger, cfg ServiceConfig, open func(context.Context, *Runtime) (Service, error)) error {
	platform := LoadPlatform(env)
	if err := env.Err(); err != nil {
		return err
	}
	rt, err := platform.Start(ctx, log)
	if err != nil {
		return err
	}
	svc, err := open(ctx, rt)
	if err != nil {
		return err
	}
	if err := rt.Connect(platform.AuditEndpoint, platform.TokenEndpoint); err != nil {
		svc.Close()
		return err
	}
	return Serve(ctx, cfg, rt, log, svc, nil)
}
