package app

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/grpcserver"
)

// Store is what every service store offers besides its own methods.
type Store interface {
	Ping(ctx context.Context) error
	Close() error
}

// OpenStore opens the service's database and wraps it in the store of the matching backend.
func OpenStore[S Store](ctx context.Context, cfg ServiceConfig, log *slog.Logger,
	onSQLite func(*db.SQLiteDB) S, onPostgres func(*db.PostgresDB) S) (S, error) {
	st, _, err := OpenStoreElector(ctx, cfg, log, onSQLite, onPostgres)
	return st, err
}

// OpenStoreElector is OpenStore that also returns the elector of the store's database, for a service
// with single-replica workers (Background.Elector).
func OpenStoreElector[S Store](ctx context.Context, cfg ServiceConfig, log *slog.Logger,
	onSQLite func(*db.SQLiteDB) S, onPostgres func(*db.PostgresDB) S) (S, db.Elector, error) {
	var zero S
	h, err := OpenDB(ctx, cfg, log)
	if err != nil {
		return zero, nil, err
	}
	e := db.ElectorFor(h, log)
	if h.SQLite != nil {
		return onSQLite(h.SQLite), e, nil
	}
	return onPostgres(h.Postgres), e, nil
}

// StoreService is a gRPC service implementation backed by one store.
type StoreService struct {
	store  Store
	policy auth.Policy
	desc   *grpc.ServiceDesc
	impl   any
}

var _ Service = (*StoreService)(nil)

// NewStoreService pairs a service implementation with the store it owns.
func NewStoreService(st Store, policy auth.Policy, desc *grpc.ServiceDesc, impl any) *StoreService {
	return &StoreService{store: st, policy: policy, desc: desc, impl: impl}
}

// Policy implements Service.
func (s *StoreService) Policy() auth.Policy { return s.policy }

// Register implements Service.
func (s *StoreService) Register(srv *grpcserver.Server) { srv.Register(s.desc, s.impl) }

// Ping implements Service.
func (s *StoreService) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Close implements Service.
func (s *StoreService) Close() error { return s.store.Close() }
