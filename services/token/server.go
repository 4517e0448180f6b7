// Package token is the token service: it keeps OAuth connections sealed at rest, hands out access tokens
// that are always valid, refreshes each one exactly once across replicas, and serves
// sergas.token.v1.TokenService.
package token

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/token/provider"
	"github.com/sergas/core/services/token/store"
)

// Limits on stored values (the same as on what a provider issues); tokens from real providers are far
// smaller.
const (
	maxTokenBytes = provider.MaxTokenBytes
	maxScopes     = provider.MaxScopes
	maxScopeBytes = provider.MaxScopeBytes
)

// earliestExpire is the earliest expire_time a caller may store. Any time before now means "expired" to
// the service, so nothing is lost by refusing older ones; the zero time (year 1) is what a careless
// client sends, and the stores read it as "no time", which must never reach a NOT NULL column.
var earliestExpire = time.Unix(0, 0).UTC()

// checkExpire refuses an expiry the stores cannot keep or that makes no sense for an access token: before
// 1970 or more than provider.MaxExpiresIn from now.
func checkExpire(field string, t, now time.Time) error {
	if t.Before(earliestExpire) || t.After(now.Add(provider.MaxExpiresIn)) {
		return errs.Invalid("%s must lie between 1970-01-01T00:00:00Z and 100 years from now", field)
	}
	return nil
}

// Server implements tokenv1.TokenServiceServer.
type Server struct {
	tokenv1.UnsafeTokenServiceServer
	store     store.Store
	seal      sealer
	providers map[string]*provider.Client
	cfg       Config
	log       *slog.Logger
	// replica names this process in leases and history.
	replica string
	flights singleflight.Group
	now     func() time.Time
	// outboxReady wakes the audit sender after a write queued events.
	outboxReady chan struct{}
	// tokens caches GetAccessToken answers for TOKEN_CACHE_TTL (store.Key → cachedToken); epoch
	// changes with every write, so that an answer read before a write is never cached after it.
	tokens sync.Map
	epoch  atomic.Uint64
	// inflight counts refreshes in progress; Close waits for them.
	inflight sync.WaitGroup
	// Completed rounds of the background workers, so that tests can wait for a round instead of a time.
	outboxRounds, refresherRounds atomic.Uint64
}

// cachedToken is a GetAccessToken answer and how long it may be served without reading the store.
type cachedToken struct {
	resp  *tokenv1.GetAccessTokenResponse
	until time.Time
}

// forget drops k's cached token; every write of k calls it.
func (s *Server) forget(k store.Key) {
	s.epoch.Add(1)
	s.tokens.Delete(k)
}

var _ tokenv1.TokenServiceServer = (*Server)(nil)

func (s *Server) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CreateConnection implements tokenv1.TokenServiceServer.
func (s *Server) CreateConnection(ctx context.Context, req *tokenv1.CreateConnectionRequest) (*tokenv1.CreateConnectionResponse, error) {
	now := s.clock()
	if err := s.validateNew(req.GetProvider(), req.GetConnectionId(), req.GetClientId(), req.GetClientSecret()); err != nil {
		return nil, err
	}
	if err := validate.First(
		validate.Text("access_token", req.GetAccessToken(), maxTokenBytes, true),
		validate.Text("refresh_token", req.GetRefreshToken(), maxTokenBytes, false),
		validate.Text("token_type", req.GetTokenType(), 32, false),
		validate.Text("api_domain", req.GetApiDomain(), 2048, false),
		validate.HTTPURL("api_domain", req.GetApiDomain()),
		validateScopes(req.GetScopes()),
	); err != nil {
		return nil, err
	}
	var expire time.Time
	switch {
	case req.GetExpireTime() != nil && req.GetExpiresIn() != nil:
		return nil, errs.Invalid("give expire_time or expires_in, not both")
	case req.GetExpireTime() != nil:
		if err := req.GetExpireTime().CheckValid(); err != nil {
			return nil, errs.Invalid("expire_time is not a valid timestamp")
		}
		expire = req.GetExpireTime().AsTime()
	case req.GetExpiresIn() != nil:
		if err := req.GetExpiresIn().CheckValid(); err != nil || req.GetExpiresIn().AsDuration() <= 0 {
			return nil, errs.Invalid("expires_in must be a positive duration")
		}
		// AsDuration saturates at about 292 years, so the bound below also catches larger durations.
		expire = now.Add(req.GetExpiresIn().AsDuration())
	default:
		return nil, errs.Invalid("expire_time or expires_in is required")
	}
	field := "expire_time"
	if req.GetExpiresIn() != nil {
		field = "expires_in"
	}
	if err := checkExpire(field, expire, now); err != nil {
		return nil, err
	}
	t := &provider.Tokens{AccessToken: req.GetAccessToken(), RefreshToken: req.GetRefreshToken(), TokenType: req.GetTokenType(),
		APIDomain: req.GetApiDomain(), Scopes: req.GetScopes()}
	c, err := s.store_(ctx, req.GetProvider(), req.GetConnectionId(), t, expire, req.GetClientId(), req.GetClientSecret(), "token.connection.create", now)
	if err != nil {
		return nil, err
	}
	return &tokenv1.CreateConnectionResponse{Connection: toProto(c)}, nil
}

// ExchangeCode implements tokenv1.TokenServiceServer.
func (s *Server) ExchangeCode(ctx context.Context, req *tokenv1.ExchangeCodeRequest) (*tokenv1.ExchangeCodeResponse, error) {
	if err := validate.First(
		s.validateNew(req.GetProvider(), req.GetConnectionId(), req.GetClientId(), req.GetClientSecret()),
		validate.Text("code", req.GetCode(), 2048, true),
		validate.Text("redirect_uri", req.GetRedirectUri(), 2048, false),
		validate.HTTPURL("redirect_uri", req.GetRedirectUri()),
	); err != nil {
		return nil, err
	}
	t, err := s.providers[req.GetProvider()].Exchange(ctx, req.GetCode(), req.GetRedirectUri(), req.GetClientId(), req.GetClientSecret())
	if err != nil {
		class, wait := provider.ClassOf(err)
		switch {
		case class == provider.ClassInvalidGrant:
			return nil, errs.Invalid("the provider rejected the authorization code (%s): codes are single-use and short-lived", class)
		case class == provider.ClassInvalidClient:
			return nil, errs.New(errs.KindFailedPrecondition, "the provider rejected the client credentials while exchanging the code (%s)", class)
		}
		return nil, providerUnavailable("exchanging the authorization code", req.GetProvider(), err, wait)
	}
	now := s.clock()
	c, err := s.store_(ctx, req.GetProvider(), req.GetConnectionId(), t, now.Add(t.ExpiresIn), req.GetClientId(), req.GetClientSecret(), "token.exchange", now)
	if err != nil {
		return nil, err
	}
	return &tokenv1.ExchangeCodeResponse{Connection: toProto(c)}, nil
}

func (s *Server) validateNew(prov, id, clientID, clientSecret string) error {
	if err := validate.First(validateKey(prov, id), validate.Text("client_id", clientID, 256, false),
		validate.Text("client_secret", clientSecret, 1024, false)); err != nil {
		return err
	}
	if (clientID == "") != (clientSecret == "") {
		return errs.Invalid("client_id and client_secret go together")
	}
	if s.providers[prov] == nil {
		return errs.Invalid("provider %q is not configured (TOKEN_PROVIDERS)", prov)
	}
	return nil
}

// store_ seals and stores tokens, queueing an audit event in the same transaction.
func (s *Server) store_(ctx context.Context, prov, id string, t *provider.Tokens, expire time.Time, clientID, clientSecret, action string, now time.Time) (*store.Connection, error) {
	k := store.Key{Provider: prov, ConnectionID: id}
	defer s.forget(k)
	access, err := s.seal.seal(k, "access_token", t.AccessToken)
	if err != nil {
		return nil, err
	}
	refresh, err := s.seal.seal(k, "refresh_token", t.RefreshToken)
	if err != nil {
		return nil, err
	}
	secret, err := s.seal.seal(k, "client_secret", clientSecret)
	if err != nil {
		return nil, err
	}
	tokenType := t.TokenType
	if tokenType == "" {
		tokenType = "Bearer"
	}
	c := &store.Connection{Provider: prov, ConnectionID: id, KeyID: s.seal.ring.Primary, AccessToken: access, RefreshToken: refresh,
		ClientID: clientID, ClientSecret: secret, TokenType: tokenType, ExpireTime: expire.UTC().Truncate(time.Microsecond),
		Scopes: t.Scopes, APIDomain: t.APIDomain, Status: store.StatusActive, CreateTime: now, UpdateTime: now}
	out, err := s.store.ConnectionPut(ctx, c, s.outbox(ctx, action, k, 1, map[string]any{
		"expire_time": c.ExpireTime.Format(time.RFC3339), "has_refresh_token": refresh != nil}))
	s.wakeOutbox()
	return out, err
}

// GetConnection implements tokenv1.TokenServiceServer.
func (s *Server) GetConnection(ctx context.Context, req *tokenv1.GetConnectionRequest) (*tokenv1.GetConnectionResponse, error) {
	if err := validateKey(req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	c, err := s.store.ConnectionGet(ctx, store.Key{Provider: req.GetProvider(), ConnectionID: req.GetConnectionId()})
	if err != nil {
		return nil, err
	}
	return &tokenv1.GetConnectionResponse{Connection: toProto(c)}, nil
}

// GetAccessToken implements tokenv1.TokenServiceServer: the hot path is one indexed read and one
// AES-GCM open; only a token inside the refresh margin goes to the refresh path.
func (s *Server) GetAccessToken(ctx context.Context, req *tokenv1.GetAccessTokenRequest) (*tokenv1.GetAccessTokenResponse, error) {
	if err := validateKey(req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	k := store.Key{Provider: req.GetProvider(), ConnectionID: req.GetConnectionId()}
	now := s.now()
	epoch := s.epoch.Load()
	if v, ok := s.tokens.Load(k); ok {
		ct := v.(cachedToken)
		if now.Before(ct.until) && ct.resp.GetExpireTime().AsTime().Sub(now) > s.cfg.RefreshMargin {
			return ct.resp, nil
		}
	}
	c, err := s.store.AccessTokenGet(ctx, k)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Status != store.StatusActive:
		if c, err = s.store.ConnectionGet(ctx, k); err != nil { // for the last error in the message
			return nil, err
		}
		return nil, needsReauthorization(c)
	case c.RefreshToken == nil && c.ExpireTime.After(now):
		// Nothing to refresh with: the token is served until it expires.
	case !s.validToken(c, now, s.cfg.RefreshMargin):
		if c, err = s.refreshShared(ctx, k, s.cfg.RefreshMargin); err != nil {
			return nil, err
		}
	}
	access, err := s.seal.open(k, "access_token", c.AccessToken)
	if err != nil {
		return nil, err
	}
	resp := &tokenv1.GetAccessTokenResponse{AccessToken: access, TokenType: c.TokenType, ExpireTime: timestamppb.New(c.ExpireTime), ApiDomain: c.APIDomain}
	if s.cfg.TokenCacheTTL > 0 && s.epoch.Load() == epoch {
		s.tokens.Store(k, cachedToken{resp: resp, until: now.Add(s.cfg.TokenCacheTTL)})
	}
	return resp, nil
}

// RefreshConnection implements tokenv1.TokenServiceServer.
func (s *Server) RefreshConnection(ctx context.Context, req *tokenv1.RefreshConnectionRequest) (*tokenv1.RefreshConnectionResponse, error) {
	if err := validateKey(req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	k := store.Key{Provider: req.GetProvider(), ConnectionID: req.GetConnectionId()}
	c, err := s.refreshShared(ctx, k, forceRefresh)
	s.forget(k)
	s.wakeOutbox()
	if err != nil {
		return nil, err
	}
	return &tokenv1.RefreshConnectionResponse{Connection: toProto(c)}, nil
}

// RevokeConnection implements tokenv1.TokenServiceServer. The connection is deleted only once the
// provider has revoked the token (or says it was no longer valid anyway).
func (s *Server) RevokeConnection(ctx context.Context, req *tokenv1.RevokeConnectionRequest) (*tokenv1.RevokeConnectionResponse, error) {
	if err := validateKey(req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	k := store.Key{Provider: req.GetProvider(), ConnectionID: req.GetConnectionId()}
	c, err := s.store.ConnectionGet(ctx, k)
	if err != nil {
		return nil, err
	}
	prov := s.providers[c.Provider]
	if prov == nil {
		return nil, errs.New(errs.KindFailedPrecondition, "provider %q is not configured (TOKEN_PROVIDERS)", c.Provider)
	}
	column, sealed := "refresh_token", c.RefreshToken
	if sealed == nil {
		column, sealed = "access_token", c.AccessToken
	}
	tok, err := s.seal.open(k, column, sealed)
	if err != nil {
		return nil, err
	}
	secret, err := s.seal.open(k, "client_secret", c.ClientSecret)
	if err != nil {
		return nil, err
	}
	if err := prov.Revoke(ctx, tok, c.ClientID, secret); err != nil {
		class, wait := provider.ClassOf(err)
		switch {
		case class == provider.ClassInvalidGrant:
			// The provider no longer knows the token: revoked already, which is what was asked.
		case prov.RevokeURL == "":
			return nil, errs.New(errs.KindFailedPrecondition, "provider %q has no revoke endpoint (set TOKEN_PROVIDER_%s_REVOKE_URL), so the token cannot be revoked; delete the connection instead and revoke it at the provider",
				c.Provider, envName(c.Provider))
		case class == provider.ClassInvalidClient:
			return nil, errs.New(errs.KindFailedPrecondition, "the provider rejected the client credentials while revoking the token (%s)", class)
		default:
			return nil, providerUnavailable("revoking the token", c.Provider, err, wait)
		}
	}
	now := s.clock()
	ev := &store.RefreshEvent{Time: now, Outcome: store.OutcomeRevoked, PreviousExpireTime: c.ExpireTime, Replica: s.replica}
	err = s.store.ConnectionDelete(ctx, k, ev, s.outbox(ctx, "token.revoke", k, 1, map[string]any{"replica": s.replica}))
	s.forget(k)
	s.wakeOutbox()
	if err != nil {
		return nil, err
	}
	return &tokenv1.RevokeConnectionResponse{}, nil
}

// ListConnections implements tokenv1.TokenServiceServer.
func (s *Server) ListConnections(ctx context.Context, req *tokenv1.ListConnectionsRequest) (*tokenv1.ListConnectionsResponse, error) {
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	p := store.ConnectionListParams{Provider: req.GetProvider(), Limit: size + 1}
	if p.Provider != "" {
		if err := validate.Name("provider", p.Provider); err != nil {
			return nil, err
		}
	}
	if req.GetPageToken() != "" {
		parts, err := pagetoken.Decode(req.GetPageToken(), 2)
		if err != nil {
			return nil, err
		}
		// A forged token could carry bytes that PostgreSQL refuses to compare (invalid UTF-8): only
		// the keys this service hands out are accepted.
		if validateKey(parts[0], parts[1]) != nil {
			return nil, errs.Invalid("page_token is not valid")
		}
		p.AfterProvider, p.AfterConnectionID = parts[0], parts[1]
	}
	cs, err := s.store.ConnectionList(ctx, p)
	if err != nil {
		return nil, err
	}
	resp := &tokenv1.ListConnectionsResponse{}
	cs, resp.NextPageToken = pagetoken.Page(cs, size, func(c *store.Connection) string { return pagetoken.Encode(c.Provider, c.ConnectionID) })
	for _, c := range cs {
		resp.Connections = append(resp.Connections, toProto(c))
	}
	return resp, nil
}

// DeleteConnection implements tokenv1.TokenServiceServer.
func (s *Server) DeleteConnection(ctx context.Context, req *tokenv1.DeleteConnectionRequest) (*tokenv1.DeleteConnectionResponse, error) {
	if err := validateKey(req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	k := store.Key{Provider: req.GetProvider(), ConnectionID: req.GetConnectionId()}
	err := s.store.ConnectionDelete(ctx, k, nil, s.outbox(ctx, "token.connection.delete", k, 1, nil))
	s.forget(k)
	s.wakeOutbox()
	if err != nil {
		return nil, err
	}
	return &tokenv1.DeleteConnectionResponse{}, nil
}

// ListRefreshEvents implements tokenv1.TokenServiceServer.
func (s *Server) ListRefreshEvents(ctx context.Context, req *tokenv1.ListRefreshEventsRequest) (*tokenv1.ListRefreshEventsResponse, error) {
	if err := validateKey(req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	before, _, err := pagetoken.DecodeInt(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	evs, err := s.store.RefreshEventList(ctx, store.Key{Provider: req.GetProvider(), ConnectionID: req.GetConnectionId()}, before, size+1)
	if err != nil {
		return nil, err
	}
	resp := &tokenv1.ListRefreshEventsResponse{}
	evs, resp.NextPageToken = pagetoken.Page(evs, size, func(e *store.RefreshEvent) string { return pagetoken.EncodeInt(e.ID) })
	for _, e := range evs {
		pe := &tokenv1.RefreshEvent{Id: e.ID, Time: timestamppb.New(e.Time), Outcome: tokenv1.RefreshOutcome(e.Outcome),
			PreviousExpireTime: timestamppb.New(e.PreviousExpireTime), ErrorClass: e.ErrorClass, RefreshTokenRotated: e.Rotated}
		if !e.NewExpireTime.IsZero() {
			pe.NewExpireTime = timestamppb.New(e.NewExpireTime)
		}
		resp.Events = append(resp.Events, pe)
	}
	return resp, nil
}

func validateKey(provider, id string) error {
	return validate.First(validate.Name("provider", provider), validate.ID("connection_id", id, 128))
}

func validateScopes(scopes []string) error {
	if len(scopes) > maxScopes {
		return errs.Invalid("scopes must hold at most %d entries", maxScopes)
	}
	for _, sc := range scopes {
		if err := validate.Text("scopes", sc, maxScopeBytes, true); err != nil {
			return err
		}
	}
	return nil
}

// toProto converts a stored connection to its metadata. Token material never leaves here.
func toProto(c *store.Connection) *tokenv1.Connection {
	out := &tokenv1.Connection{
		Provider: c.Provider, ConnectionId: c.ConnectionID, TokenType: c.TokenType,
		ExpireTime: timestamppb.New(c.ExpireTime), Scopes: c.Scopes, ApiDomain: c.APIDomain,
		Status: tokenv1.ConnectionStatus(c.Status), HasRefreshToken: c.RefreshToken != nil,
		CreateTime: timestamppb.New(c.CreateTime), UpdateTime: timestamppb.New(c.UpdateTime),
		LastRefreshOutcome: tokenv1.RefreshOutcome(c.LastRefreshOutcome), LastRefreshError: c.LastRefreshError,
		ClientId: c.ClientID,
	}
	if !c.LastRefreshTime.IsZero() {
		out.LastRefreshTime = timestamppb.New(c.LastRefreshTime)
	}
	return out
}
