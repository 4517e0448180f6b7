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
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/store/sqlite"
)

// DefaultAddr is where the webhook service listens unless WEBHOOK_GRPC_ADDR says otherwise.
const DefaultAddr = ":50053"

// Config is the webhook service's configuration.
type Config struct {
	app.ServiceConfig
	// Sources are the source names accepted on POST /webhooks/{source}.
	Sources []string
	// DedupeHeaders name headers that carry the sender's delivery id, first match wins.
	DedupeHeaders []string
	// MaxBodyBytes caps a stored body.
	MaxBodyBytes int
	// RatePerSecond and RateBurst limit the deliveries stored per source.
	RatePerSecond, RateBurst int
	// AddressRatePerSecond and AddressRateBurst limit deliveries per sender address (an IPv6 sender per
	// /64), checked before anything else so that no one address can spend a source's budget.
	AddressRatePerSecond, AddressRateBurst int
	// TrustedProxies are the peers (the gateway) whose report of the sender's address is believed.
	TrustedProxies clientaddr.Trusted
	// HeaderDenylist names headers never stored, in canonical form; it always includes
	// AlwaysDeniedHeaders.
	HeaderDenylist []string
}

// LoadConfig reads the webhook service's settings from env.
func LoadConfig(env *config.Env) Config {
	c := Config{
		ServiceConfig: app.LoadServiceConfig(env, "webhook", DefaultAddr),
		Sources:       env.List("WEBHOOK_SOURCES", []string{"zoho"}),
		DedupeHeaders: env.List("WEBHOOK_DEDUPE_HEADERS", []string{"Webhook-Id", "Idempotency-Key"}),
		MaxBodyBytes:  env.Int("WEBHOOK_MAX_BODY_BYTES", 1<<20, 1, 3<<20),
		RatePerSecond: env.Int("WEBHOOK_RATE_LIMIT_PER_SECOND", 100, 0, 1_000_000),
		RateBurst:     env.Int("WEBHOOK_RATE_LIMIT_BURST", 200, 1, 1_000_000),
		// Half the source's default, so that one address alone cannot empty a source's bucket.
		AddressRatePerSecond: env.Int("WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND", 50, 0, 1_000_000),
		AddressRateBurst:     env.Int("WEBHOOK_ADDRESS_RATE_LIMIT_BURST", 100, 1, 1_000_000),
		TrustedProxies:       clientaddr.LoadProxies(env, app.Development(env)),
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
	for _, s := range c.Sources {
		if validate.Name("source", s) != nil {
			env.Fail("WEBHOOK_SOURCES", "must be a comma-separated list of lower-case names (letters, digits, '-', '_')")
		}
	}
	return c
}

// Policy is the scope each WebhookService RPC needs. Ingest is public: webhook senders cannot hold our
// credentials, and the body is what gets checked.
var Policy = auth.Policy{
	Scopes: map[string]string{
		webhookv1.WebhookService_GetEvent_FullMethodName:   auth.ScopeWebhookRead,
		webhookv1.WebhookService_ListEvents_FullMethodName: auth.ScopeWebhookRead,
	},
	Public: []string{webhookv1.WebhookService_Ingest_FullMethodName},
}

// Open opens the service's database and returns the service ready to serve.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*app.StoreService, error) {
	clientaddr.LogWarning(log, cfg.TrustedProxies)
	st, err := app.OpenStore(ctx, cfg.ServiceConfig, log,
		func(d *db.SQLiteDB) store.Store { return sqlite.New(d) },
		func(d *db.PostgresDB) store.Store { return postgres.New(d) })
	if err != nil {
		return nil, err
	}
	return app.NewStoreService(st, Policy, &webhookv1.WebhookService_ServiceDesc, NewServer(st, cfg)), nil
}
