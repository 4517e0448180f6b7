// Package gateway is the REST face of Sergas Core: grpc-gateway routes for every service, the raw webhook
// ingress, health and readiness, metrics and the OpenAPI document.
package gateway

import (
	"net/textproto"
	"time"

	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/config"
)

// Config is the gateway's configuration.
type Config struct {
	Addr            string
	TokenEndpoint   string
	AuditEndpoint   string
	WebhookEndpoint string
	// MaxBodyBytes caps REST request bodies; WebhookMaxBodyBytes caps webhook bodies.
	MaxBodyBytes        int64
	WebhookMaxBodyBytes int64
	ReadHeaderTimeout   time.Duration
	RequestTimeout      time.Duration
	IdleTimeout         time.Duration
	ShutdownTimeout     time.Duration
	// TrustedProxies are the load balancers whose ClientIPHeader is believed; the address found is passed
	// to the services as the caller's.
	TrustedProxies clientaddr.Trusted
	ClientIPHeader string
	// ClientAddrSecret (CLIENT_ADDR_SECRET, shared with the services) proves the client addresses the
	// gateway reports; without it, the process's own random key, which only services in the same process
	// (the all-in-one binary) can check. ClientAddrSecretSet says which.
	ClientAddrSecret    []byte
	ClientAddrSecretSet bool
	// Development (SERGAS_ENV=development) only changes what is logged at start: there the services believe
	// a loopback gateway without CLIENT_ADDR_SECRET.
	Development bool
	// WebhookCredential returns the API key the gateway presents to WebhookService.Ingest, which needs
	// webhook:ingest (GATEWAY_WEBHOOK_API_KEY, or GATEWAY_WEBHOOK_API_KEY_FILE re-read when it changes; in
	// development without either, the development key in DATA_DIR/dev-api-key). It returns "" when there
	// is none: the gateway then relies on its client certificate being mapped to webhook:ingest
	// (AUTH_TLS_IDENTITIES). nil (a Config not made by LoadConfig) is the same as "".
	WebhookCredential func() string
	// MethodOverride lets a form POST be served as the method in X-HTTP-Method-Override (or as GET), as
	// grpc-gateway does by default. Off, because it turns a request a browser sends across sites without
	// asking into a GET, PUT or DELETE.
	MethodOverride bool
}

// LoadConfig reads the gateway's settings from env.
func LoadConfig(env *config.Env) Config {
	c := Config{
		Addr:                env.String("GATEWAY_HTTP_ADDR", ":8080"),
		TokenEndpoint:       env.String("TOKEN_GRPC_ENDPOINT", "localhost:50051"),
		AuditEndpoint:       env.String("AUDIT_GRPC_ENDPOINT", "localhost:50052"),
		WebhookEndpoint:     env.String("WEBHOOK_GRPC_ENDPOINT", "localhost:50053"),
		MaxBodyBytes:        int64(env.Int("GATEWAY_MAX_BODY_BYTES", 1<<20, 1<<10, 64<<20)),
		WebhookMaxBodyBytes: int64(env.Int("WEBHOOK_MAX_BODY_BYTES", 1<<20, 1, 3<<20)),
		ReadHeaderTimeout:   env.Duration("GATEWAY_READ_HEADER_TIMEOUT", 10*time.Second, time.Second, 5*time.Minute),
		RequestTimeout:      env.Duration("GATEWAY_REQUEST_TIMEOUT", 30*time.Second, time.Second, 10*time.Minute),
		IdleTimeout:         env.Duration("GATEWAY_IDLE_TIMEOUT", 2*time.Minute, time.Second, time.Hour),
		ShutdownTimeout:     env.Duration("SHUTDOWN_TIMEOUT", 15*time.Second, 0, 10*time.Minute),
		TrustedProxies:      clientaddr.Load(env, "GATEWAY_TRUSTED_PROXIES", nil),
		ClientIPHeader:      textproto.CanonicalMIMEHeaderKey(env.String("GATEWAY_CLIENT_IP_HEADER", "X-Forwarded-For")),
		MethodOverride:      env.Bool("GATEWAY_HTTP_METHOD_OVERRIDE", false),
		Development:         env.OneOf("SERGAS_ENV", "production", "production", "development") == "development",
	}
	c.ClientAddrSecret, c.ClientAddrSecretSet = clientaddr.LoadSecret(env)
	c.WebhookCredential = loadWebhookCredential(env, c.Development)
	return c
}
