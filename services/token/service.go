package token

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbstats"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/token/store"
	"github.com/sergas/core/services/token/store/postgres"
	"github.com/sergas/core/services/token/store/sqlite"
)

// Policy is the scope each TokenService RPC needs.
var Policy = auth.Policy{Scopes: map[string]string{
	tokenv1.TokenService_GetAccessToken_FullMethodName:    auth.ScopeTokenRead,
	tokenv1.TokenService_GetConnection_FullMethodName:     auth.ScopeTokenRead,
	tokenv1.TokenService_ListConnections_FullMethodName:   auth.ScopeTokenRead,
	tokenv1.TokenService_ListRefreshEvents_FullMethodName: auth.ScopeTokenRead,
	tokenv1.TokenService_CreateConnection_FullMethodName:  auth.ScopeTokenAdmin,
	tokenv1.TokenService_ExchangeCode_FullMethodName:      auth.ScopeTokenAdmin,
	tokenv1.TokenService_RefreshConnection_FullMethodName: auth.ScopeTokenAdmin,
	tokenv1.TokenService_RevokeConnection_FullMethodName:  auth.ScopeTokenAdmin,
	tokenv1.TokenService_DeleteConnection_FullMethodName:  auth.ScopeTokenAdmin,
}}

// Service is the token service: its server, store and background work.
type Service struct {
	*Server
	audit AuditRecorder
}

var (
	_ app.Service           = (*Service)(nil)
	_ app.BackgroundService = (*Service)(nil)
)

// Open opens the store and checks that the keyring opens what is stored. The background refresher and
// the audit outbox sender are declared by Background and run by the platform. audit may be nil (events
// then wait in the outbox).
func Open(ctx context.Context, cfg Config, log *slog.Logger, audit AuditRecorder) (*Service, error) {
	ring, err := loadKeyring(cfg.Keys, cfg.DevKeyFile)
	if err != nil {
		return nil, err
	}
	stats := dbstats.Source{Service: "token", Log: log}
	st, err := openStoreStats(ctx, cfg, log, &stats)
	if err != nil {
		return nil, err
	}
	s := &Server{store: st, seal: sealer{ring}, providers: cfg.Providers, cfg: cfg, log: log,
		replica: uuid.NewString()[:8], now: time.Now, outboxReady: make(chan struct{}, 1)}
	if err := s.checkKeys(ctx); err != nil {
		st.Close()
		return nil, err
	}
	for _, p := range cfg.Providers {
		log.Info("token provider", "provider", p.Describe())
	}
	initRefreshMetrics(cfg.Providers)
	svc := &Service{Server: s, audit: audit}
	stats.Token = st
	dbstats.Register(svc, stats)
	return svc, nil
}

// Background implements app.BackgroundService. Both jobs run on every replica, with no election: each
// background refresh first takes the connection's lease in the database (so no connection is refreshed
// twice, and more replicas share the work), and the outbox sender claims the rows it sends (so no event
// is sent by two replicas); a leader would only add a failover delay.
func (s *Service) Background() app.Background {
	var ws []app.Worker
	if s.cfg.RefresherInterval > 0 {
		ws = append(ws, app.Worker{Name: "token.refresher", Run: func(ctx context.Context) error { s.refreshAhead(ctx); return nil }})
	}
	if s.audit != nil {
		ws = append(ws, app.Worker{Name: "token.outbox", Run: func(ctx context.Context) error { s.sendOutbox(ctx, s.audit); return nil }})
	}
	return app.Background{Workers: ws}
}

func openStore(ctx context.Context, cfg Config, log *slog.Logger) (store.Store, error) {
	return openStoreStats(ctx, cfg, log, &dbstats.Source{})
}

// openStoreStats is openStore that also sets the database in stats, for the database gauges.
func openStoreStats(ctx context.Context, cfg Config, log *slog.Logger, stats *dbstats.Source) (store.Store, error) {
	sc := cfg.ServiceConfig
	if !cfg.Persistent {
		// An in-memory SQLite database: the same store and SQL, nothing written to disk.
		sc.DB.Dialect, sc.DB.SQLitePath = db.SQLite, db.MemoryPath("token-"+uuid.NewString())
		log.Warn("TOKEN_PERSISTENCE_ENABLED=false: tokens live in memory and are lost when the process stops")
	}
	return app.OpenStore(ctx, sc, log,
		func(d *db.SQLiteDB) store.Store { stats.SQLite = d; return sqlite.New(d) },
		func(d *db.PostgresDB) store.Store { stats.Postgres = d; return postgres.New(d) })
}

// checkKeys refuses to start when stored rows were sealed with keys the keyring lacks, or with material
// that does not open them: better a clear error at start than garbage at the first refresh.
func (s *Server) checkKeys(ctx context.Context) error {
	ids, err := s.store.KeyIDs(ctx)
	if err != nil {
		return err
	}
	for id, n := range ids {
		if !s.seal.ring.Has(id) {
			return fmt.Errorf("TOKEN_ENCRYPTION_KEYS lacks key %q, which sealed %d stored connection(s); add it back (after the primary key)", id, n)
		}
		c, err := s.store.ConnectionSealedWith(ctx, id)
		if err != nil {
			return err
		}
		k := store.Key{Provider: c.Provider, ConnectionID: c.ConnectionID}
		for _, col := range []struct {
			name string
			v    []byte
		}{{"access_token", c.AccessToken}, {"refresh_token", c.RefreshToken}, {"client_secret", c.ClientSecret}} {
			if col.v == nil {
				continue
			}
			if inner, _ := keyring.KeyID(col.v); inner != id {
				return fmt.Errorf("stored connection %s/%s has its %s sealed with key %q but is recorded under %q; run sergas-token reseal with both keys configured",
					c.Provider, c.ConnectionID, col.name, inner, id)
			}
			if _, err := s.seal.open(k, col.name, col.v); err != nil {
				return fmt.Errorf("TOKEN_ENCRYPTION_KEYS: key %q does not open the connections it sealed: wrong key material", id)
			}
		}
	}
	return nil
}

// Register implements app.Service.
func (s *Service) Register(srv *grpcserver.Server) {
	srv.Register(&tokenv1.TokenService_ServiceDesc, s.Server)
}

// Ping implements app.Service.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Policy implements app.Service.
func (s *Service) Policy() auth.Policy { return Policy }

// Close waits for refreshes in progress to store their outcome (a rotated refresh token exists nowhere
// else), then closes the store. The platform has stopped the background workers before.
func (s *Service) Close() error {
	waited := make(chan struct{})
	go func() { s.inflight.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(s.cfg.LeaseTTL + 30*time.Second):
		s.log.Error("refreshes still running at close; their leases expire on their own")
	}
	return s.store.Close()
}
