package webhook

import (
	"context"
	"log/slog"
	"net/textproto"
	"slices"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbstats"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/store/sqlite"
)

// DefaultAddr is where the webhook service listens unless WEBHOOK_GRPC_ADDR says otherwise.
const DefaultAddr = ":50053"

// Config is the webhook service's configuration.
type Config struct {
	app.ServiceConfig
	// SourcesFile (WEBHOOK_SOURCES_FILE) holds the sources, re-read when it changes; Sources are the
	// sources from the environment form (WEBHOOK_SOURCES) when there is no file. Only one of them is set.
	SourcesFile string
	Sources     []SourceConfig
	// DedupeHeaders name headers that carry the sender's delivery id, first match wins (scheme none only:
	// the verified schemes take the id from what the sender signed, or the configured event id header).
	DedupeHeaders []string
	// MaxBodyBytes caps a stored body; a source's body_limit may only lower it.
	MaxBodyBytes int
	// RatePerSecond and RateBurst limit the deliveries stored per source unless the source sets its own.
	RatePerSecond, RateBurst int
	// AddressRatePerSecond and AddressRateBurst limit deliveries per sender address (an IPv6 sender per
	// /64), checked before anything else so that no one address can spend a source's budget.
	AddressRatePerSecond, AddressRateBurst int
	// MaxQueueSize (WEBHOOK_MAX_QUEUE_SIZE) is the undelivered backlog (pending and failed events) at
	// which Ingest answers UNAVAILABLE (503 with Retry-After) instead of storing more; 0 turns it off.
	MaxQueueSize int
	// TrustedProxies are the peers (the gateway) whose report of the sender's address is believed.
	TrustedProxies clientaddr.Trusted
	// HeaderDenylist names headers never stored, in canonical form; it always includes
	// AlwaysDeniedHeaders.
	HeaderDenylist []string
	// Development is SERGAS_ENV=development: a source without a scheme means none (with a warning)
	// instead of refusing to start.
	Development bool
	// Channels is how Zoho CRM notification channels are managed (channelcfg.go).
	Channels ChannelConfig
	// MaxRetries (WEBHOOK_MAX_RETRIES) is a new subscription's retries unless it sets its own.
	MaxRetries int
	// Consume is how pull consumers are served (consume_wake.go).
	Consume ConsumeConfig
	// Push is how push subscriptions are delivered (push_config.go).
	Push PushConfig
	// Retention is how old events are purged (purge_config.go).
	Retention RetentionConfig

	// sources is what LoadConfig built and checked (and, for a file, keeps re-reading).
	sources *sourceProvider
}

// LoadConfig reads the webhook service's settings from env. The sources are checked here, so that a bad
// source (or sources file) stops the service at start, named with the problem but never a secret.
func LoadConfig(env *config.Env) Config {
	c := Config{
		ServiceConfig: app.LoadServiceConfig(env, "webhook", DefaultAddr),
		SourcesFile:   env.String("WEBHOOK_SOURCES_FILE", ""),
		DedupeHeaders: env.List("WEBHOOK_DEDUPE_HEADERS", []string{"Webhook-Id", "Idempotency-Key"}),
		MaxBodyBytes:  env.Int("WEBHOOK_MAX_BODY_BYTES", 1<<20, 1, 3<<20),
		RatePerSecond: env.Int("WEBHOOK_RATE_LIMIT_PER_SECOND", 100, 0, 1_000_000),
		RateBurst:     env.Int("WEBHOOK_RATE_LIMIT_BURST", 200, 1, 1_000_000),
		// Half the source's default, so that one address alone cannot empty a source's bucket.
		AddressRatePerSecond: env.Int("WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND", 50, 0, 1_000_000),
		AddressRateBurst:     env.Int("WEBHOOK_ADDRESS_RATE_LIMIT_BURST", 100, 1, 1_000_000),
		MaxQueueSize:         env.Int("WEBHOOK_MAX_QUEUE_SIZE", 10_000, 0, 1_000_000_000),
		TrustedProxies:       clientaddr.LoadProxies(env, app.Development(env)),
		Development:          app.Development(env),
		Channels:             loadChannelConfig(env, app.Development(env)),
		MaxRetries:           env.Int("WEBHOOK_MAX_RETRIES", 5, 0, maxRetriesLimit),
		Consume:              LoadConsumeConfig(env),
		Push:                 LoadPushConfig(env),
		Retention:            LoadRetentionConfig(env),
	}
	deny, ok := headerDenylist(env.List("WEBHOOK_HEADER_DENYLIST", DefaultHeaderDenylist))
	if !ok {
		env.Fail("WEBHOOK_HEADER_DENYLIST", "must be a comma-separated list of HTTP header names")
	}
	c.HeaderDenylist = deny
	// A delivery id header's value becomes the stored dedupe key, so a denied header there would be stored
	// (and shown to readers) after all.
	for _, n := range c.DedupeHeaders {
		if _, denied := slices.BinarySearch(deny, textproto.CanonicalMIMEHeaderKey(n)); denied {
			env.Fail("WEBHOOK_DEDUPE_HEADERS", "must not name a header on WEBHOOK_HEADER_DENYLIST: its value would be stored as the dedupe key")
		}
	}
	c.loadSources(env)
	return c
}

// defaults are what a source gets unless it sets its own limits.
func (c Config) defaults() sourceDefaults {
	return sourceDefaults{rate: RateConfig{PerSecond: c.RatePerSecond, Burst: c.RateBurst}, bodyLimit: c.MaxBodyBytes, deny: c.HeaderDenylist}
}

// loadSources reads the sources from WEBHOOK_SOURCES_FILE or, without it, WEBHOOK_SOURCES, and builds
// them once so that every problem is reported at start.
func (c *Config) loadSources(env *config.Env) {
	lookup := secretResolver(env.Lookup)
	_, listSet := env.Lookup("WEBHOOK_SOURCES")
	if c.SourcesFile != "" {
		if listSet {
			env.Fail("WEBHOOK_SOURCES", "must not be set together with WEBHOOK_SOURCES_FILE")
			return
		}
		p, err := watchSourcesFile(c.SourcesFile, c.defaults(), lookup)
		if err != nil {
			env.Fail("WEBHOOK_SOURCES_FILE", err.Error())
			return
		}
		c.sources = p
		return
	}
	names := env.List("WEBHOOK_SOURCES", nil)
	if !listSet {
		names = defaultSources(c.Development)
	}
	cfgs, err := sourcesFromEnv(names, c.Development, env.Lookup)
	if err != nil {
		env.Fail("WEBHOOK_SOURCES", err.Error())
		return
	}
	set, err := buildSources(cfgs, c.defaults(), lookup, nil)
	if err != nil {
		env.Fail("WEBHOOK_SOURCES", err.Error())
		return
	}
	c.Sources, c.sources = cfgs, &sourceProvider{static: set}
}

// Policy is the scope each WebhookService RPC needs. Ingest needs webhook:ingest, the gateway's own
// credential: webhook senders cannot hold ours (their signature is what Ingest checks), and without it
// anyone reaching the gRPC port could store events as any source and skip the gateway's limits.
var Policy = auth.Policy{
	Scopes: map[string]string{
		webhookv1.WebhookService_Ingest_FullMethodName:      auth.ScopeWebhookIngest,
		webhookv1.WebhookService_IngestBatch_FullMethodName: auth.ScopeWebhookIngest,
		webhookv1.WebhookService_GetEvent_FullMethodName:    auth.ScopeWebhookRead,
		webhookv1.WebhookService_ListEvents_FullMethodName:  auth.ScopeWebhookRead,
		// Channels: reading them needs webhook:read; enabling, renewing and disabling act at Zoho with a
		// connection's token, so they need webhook:admin.
		webhookv1.WebhookService_CreateChannel_FullMethodName:  auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_GetChannel_FullMethodName:     auth.ScopeWebhookRead,
		webhookv1.WebhookService_ListChannels_FullMethodName:   auth.ScopeWebhookRead,
		webhookv1.WebhookService_RenewChannel_FullMethodName:   auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_DisableChannel_FullMethodName: auth.ScopeWebhookAdmin,
		// Subscriptions are configured by admins and read by readers; consumers (agents) hold
		// webhook:consume, which leases, acknowledges and gives back deliveries and nothing else.
		webhookv1.WebhookService_CreateSubscription_FullMethodName:  auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_GetSubscription_FullMethodName:     auth.ScopeWebhookRead,
		webhookv1.WebhookService_ListSubscriptions_FullMethodName:   auth.ScopeWebhookRead,
		webhookv1.WebhookService_PauseSubscription_FullMethodName:   auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_ResumeSubscription_FullMethodName:  auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_DeleteSubscription_FullMethodName:  auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_Receive_FullMethodName:             auth.ScopeWebhookConsume,
		webhookv1.WebhookService_Poll_FullMethodName:                auth.ScopeWebhookConsume,
		webhookv1.WebhookService_Ack_FullMethodName:                 auth.ScopeWebhookConsume,
		webhookv1.WebhookService_Nack_FullMethodName:                auth.ScopeWebhookConsume,
		webhookv1.WebhookService_ExtendLease_FullMethodName:         auth.ScopeWebhookConsume,
		webhookv1.WebhookService_GetDelivery_FullMethodName:         auth.ScopeWebhookRead,
		webhookv1.WebhookService_ListDeliveries_FullMethodName:      auth.ScopeWebhookRead,
		webhookv1.WebhookService_RedriveDeliveries_FullMethodName:   auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_ReplayEvents_FullMethodName:        auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_PurgeEvents_FullMethodName:         auth.ScopeWebhookAdmin,
		webhookv1.WebhookService_RotateSigningSecret_FullMethodName: auth.ScopeWebhookAdmin,
	},
}

// Denials is the option that sends deliveries failing verification to rt's denial log, when it has one.
func Denials(rt *app.Runtime) Option {
	return func(s *Server) {
		if rt != nil && rt.Denials != nil {
			s.refusals.denials = rt.Denials
		}
	}
}

// Service is the webhook service: its server over the store, and the background work (Server.workers)
// that the platform runs beside it.
type Service struct {
	*app.StoreService
	server  *Server
	elector db.Elector
}

var (
	_ app.Service           = (*Service)(nil)
	_ app.BackgroundService = (*Service)(nil)
)

// Open opens the service's database and returns the service ready to serve. Deliveries are group
// committed (commit.go) once the platform runs the service's workers.
func Open(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Service, error) {
	clientaddr.LogWarning(log, cfg.TrustedProxies)
	stats := dbstats.Source{Service: "webhook", Log: log}
	st, elector, err := app.OpenStoreElector(ctx, cfg.ServiceConfig, log,
		func(d *db.SQLiteDB) store.Store { stats.SQLite = d; return sqlite.New(d) },
		func(d *db.PostgresDB) store.Store { stats.Postgres = d; return postgres.New(d) })
	if err != nil {
		return nil, err
	}
	chOpts, err := channelOptions(ctx, cfg.Channels, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	srv := NewServer(st, cfg, append(append([]Option{WithLogger(log), withGroupCommit(defaultGroupCommit), WithConsumeConfig(cfg.Consume)}, chOpts...), opts...)...)
	srv.logSources()
	svc := &Service{StoreService: app.NewStoreService(st, Policy, &webhookv1.WebhookService_ServiceDesc, srv), server: srv, elector: elector}
	dbstats.Register(svc, stats) // the backlog gauges are the server's own (consume_metrics.go)
	return svc, nil
}

// Background implements app.BackgroundService: the server's workers and the channel renewer; the
// elector picks the replica that runs the single-replica ones.
func (s *Service) Background() app.Background {
	return app.Background{Workers: append(s.server.workers(), s.server.channelWorkers()...), Elector: s.elector}
}

// logSources says at start which sources are served, and warns about each unverified one.
func (s *Server) logSources() {
	set := s.sources.get()
	if len(set) == 0 {
		s.log.Info("no webhook sources configured: every delivery is refused (404); set WEBHOOK_SOURCES or WEBHOOK_SOURCES_FILE", "service", "webhook")
	}
	for _, src := range set {
		s.log.Info("webhook source", "service", "webhook", "source", src.name, "scheme", src.scheme,
			"body_limit", src.bodyLimit, "rate_per_second", src.rate.PerSecond, "burst", src.rate.Burst)
	}
	warnUnverified(s.log, set)
}
