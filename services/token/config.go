package token

import (
	"time"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/token/provider"
)

// DefaultAddr is where the token service listens unless TOKEN_GRPC_ADDR says otherwise.
const DefaultAddr = ":50051"

// Config is the token service's configuration.
type Config struct {
	app.ServiceConfig
	Providers map[string]*provider.Client
	// RefreshMargin: GetAccessToken refreshes a token that expires within it.
	RefreshMargin time.Duration
	// LeaseTTL bounds how long one replica may hold a connection's refresh lease.
	LeaseTTL time.Duration
	// RefresherInterval is how often the background refresher looks for connections about to expire;
	// 0 disables it.
	RefresherInterval    time.Duration
	RefresherConcurrency int
	// TokenCacheTTL: GetAccessToken answers are served from memory for this long (0: never). It bounds
	// how long another replica's revoke or delete takes to reach this one.
	TokenCacheTTL time.Duration
	// Persistent false keeps everything in an in-memory database (TOKEN_PERSISTENCE_ENABLED=false).
	Persistent bool
	// Keys is the keyring spec (TOKEN_ENCRYPTION_KEYS). In development mode an empty spec uses a key
	// kept in DATA_DIR/dev-token-key.
	Keys        string
	DevKeyFile  string
	Development bool
}

// LoadConfig reads the token service's settings from env.
func LoadConfig(env *config.Env) Config {
	dev := app.Development(env)
	timeout := env.Duration("TOKEN_PROVIDER_TIMEOUT", 10*time.Second, time.Second, time.Minute)
	c := Config{
		ServiceConfig:        app.LoadServiceConfig(env, "token", DefaultAddr),
		Providers:            provider.LoadConfig(env, timeout),
		RefreshMargin:        env.Duration("TOKEN_REFRESH_MARGIN", 5*time.Minute, 0, 12*time.Hour),
		LeaseTTL:             env.Duration("TOKEN_REFRESH_LEASE", 30*time.Second, time.Second, 10*time.Minute),
		RefresherInterval:    env.Duration("TOKEN_REFRESHER_INTERVAL", 30*time.Second, 0, time.Hour),
		RefresherConcurrency: env.Int("TOKEN_REFRESHER_CONCURRENCY", 4, 1, 256),
		Persistent:           env.Bool("TOKEN_PERSISTENCE_ENABLED", true),
		TokenCacheTTL:        env.Duration("TOKEN_CACHE_TTL", time.Second, 0, time.Minute),
		Keys:                 env.String("TOKEN_ENCRYPTION_KEYS", ""),
		Development:          dev,
	}
	if c.LeaseTTL <= timeout {
		env.Fail("TOKEN_REFRESH_LEASE", "must be longer than TOKEN_PROVIDER_TIMEOUT, so a lease outlives the provider call it covers")
	}
	if c.Keys == "" {
		if dev {
			c.DevKeyFile = env.String("DATA_DIR", "./data") + "/dev-token-key"
		} else {
			env.Fail("TOKEN_ENCRYPTION_KEYS", "is required outside development mode: id:base64key[,id:base64key…], 32-byte keys (head -c 32 /dev/urandom | base64); the first seals, all open")
		}
	}
	return c
}
