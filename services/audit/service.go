package audit

import (
	"context"
	"log/slog"
	"strings"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbstats"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
)

// DefaultAddr is where the audit service listens unless AUDIT_GRPC_ADDR says otherwise.
const DefaultAddr = ":50052"

// Config is the audit service's configuration.
type Config struct {
	app.ServiceConfig
	Limits      Limits
	GroupCommit GroupCommit
	// RedactKeys are the metadata keys whose values are redacted (see newRedactor); none turns it off.
	RedactKeys []string
	// Signing says where the checkpoint signing key comes from, and how often checkpoints are signed.
	Signing   Signing
	Retention Retention
}

// LoadConfig reads the audit service's settings from env.
func LoadConfig(env *config.Env) Config {
	return Config{
		ServiceConfig: app.LoadServiceConfig(env, "audit", DefaultAddr),
		Limits: Limits{
			MaxClockSkew: env.Duration("AUDIT_MAX_CLOCK_SKEW", DefaultLimits.MaxClockSkew, 0, 24*time.Hour),
			MaxEventAge:  env.Duration("AUDIT_MAX_EVENT_AGE", DefaultLimits.MaxEventAge, time.Minute, 10*365*24*time.Hour),
		},
		GroupCommit: GroupCommit{
			MaxEvents: env.Int("AUDIT_GROUP_COMMIT_MAX_EVENTS", DefaultGroupCommit.MaxEvents, 1, 4096),
			Window:    env.Duration("AUDIT_GROUP_COMMIT_WINDOW", DefaultGroupCommit.Window, 0, time.Second),
		},
		RedactKeys: redactKeys(env),
		Signing:    loadSigning(env),
		Retention: Retention{
			Days:  env.Int("AUDIT_RETENTION_DAYS", DefaultRetention.Days, 0, 100*365),
			Every: DefaultRetention.Every, Batch: DefaultRetention.Batch,
		},
	}
}

// redactKeys reads AUDIT_REDACT_KEYS: keys that replace DefaultRedactKeys, or "none" to turn redaction
// off (an empty value means unset, as for every variable).
func redactKeys(env *config.Env) []string {
	keys := env.List("AUDIT_REDACT_KEYS", DefaultRedactKeys)
	if len(keys) == 1 && strings.EqualFold(keys[0], "none") {
		return nil
	}
	for _, k := range keys {
		if normalizeKey(k) == "" {
			env.Fail("AUDIT_REDACT_KEYS", "every key must hold a letter or digit")
		}
	}
	return keys
}

// Policy is the scope each AuditService RPC needs.
var Policy = auth.Policy{Scopes: map[string]string{
	auditv1.AuditService_RecordEvent_FullMethodName:      auth.ScopeAuditWrite,
	auditv1.AuditService_RecordEvents_FullMethodName:     auth.ScopeAuditWrite,
	auditv1.AuditService_GetEvent_FullMethodName:         auth.ScopeAuditRead,
	auditv1.AuditService_ListEvents_FullMethodName:       auth.ScopeAuditRead,
	auditv1.AuditService_VerifyChain_FullMethodName:      auth.ScopeAuditRead,
	auditv1.AuditService_GetCheckpoint_FullMethodName:    auth.ScopeAuditRead,
	auditv1.AuditService_ListCheckpoints_FullMethodName:  auth.ScopeAuditRead,
	auditv1.AuditService_ExportEvents_FullMethodName:     auth.ScopeAuditRead,
	auditv1.AuditService_CreateCheckpoint_FullMethodName: auth.ScopeAuditAdmin,
}, Public: []string{auditv1.AuditService_GetSigningKey_FullMethodName}}

// Service is the audit service: its server over the store, and the group committer that the platform
// runs as a worker.
type Service struct {
	*app.StoreService
	committer *committer
	server    *Server
	retainer  *retainer // nil without a signing key
	elector   db.Elector
	cfg       Config
}

var (
	_ app.Service           = (*Service)(nil)
	_ app.BackgroundService = (*Service)(nil)
)

// Open opens the service's database and returns the service ready to serve.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Service, error) {
	key, err := cfg.Signing.key(log)
	if err != nil {
		return nil, err
	}
	stats := dbstats.Source{Service: "audit", Log: log}
	st, elector, err := app.OpenStoreElector(ctx, cfg.ServiceConfig, log,
		func(d *db.SQLiteDB) store.Store { stats.SQLite = d; return sqlite.New(d) },
		func(d *db.PostgresDB) store.Store { stats.Postgres = d; return postgres.New(d) })
	if err != nil {
		return nil, err
	}
	srv := NewServer(st, cfg.Limits)
	srv.redact = newRedactor(cfg.RedactKeys)
	c := newCommitter(st, cfg.GroupCommit, log)
	srv.append = c.Do
	svc := &Service{StoreService: app.NewStoreService(st, Policy, &auditv1.AuditService_ServiceDesc, srv), committer: c,
		server: srv, elector: elector, cfg: cfg}
	if key != nil {
		srv.checkpoints = newCheckpointer(st, key, cfg.Signing.Interval, log)
		srv.trustedKeys = trustedKeyIDs(key, cfg.Signing.PreviousKeyIDs)
		svc.retainer = &retainer{st: st, cfg: cfg.Retention, cp: srv.checkpoints, now: time.Now, log: log}
	}
	stats.Audit = st
	dbstats.Register(svc, stats)
	return svc, nil
}

// Background implements app.BackgroundService. The group committer runs on every replica: batches from
// all of them take turns on the chain head's lock, as single appends do.
//
// The checkpoint signer and retention run on one replica (the elector's leader): one schedule of
// checkpoints, one retention cut at a time.
func (s *Service) Background() app.Background {
	b := app.Background{Workers: []app.Worker{{Name: groupCommitWorker, Run: s.committer.Run}}, Elector: s.elector}
	if cp := s.server.checkpoints; cp != nil && s.cfg.Signing.Interval > 0 {
		b.Workers = append(b.Workers, app.Worker{Name: "audit.checkpointer", Run: cp.Run, SingleReplica: true})
	}
	if s.retainer != nil && s.cfg.Retention.Days > 0 {
		b.Workers = append(b.Workers, app.Worker{Name: "audit.retention", Run: s.retainer.Run, SingleReplica: true})
	}
	return b
}
