// Package token is the token service: it stores OAuth connections and serves sergas.token.v1.TokenService.
package token

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/token/store"
)

// Limits on stored values; tokens from real providers are far smaller.
const (
	maxTokenBytes = 8 << 10
	maxScopes     = 100
	maxScopeBytes = 256
)

// Server implements tokenv1.TokenServiceServer over a Store.
type Server struct {
	tokenv1.UnsafeTokenServiceServer
	store store.Store
	now   func() time.Time
}

// NewServer returns a server over s.
func NewServer(s store.Store) *Server {
	return &Server{store: s, now: time.Now}
}

// CreateConnection implements tokenv1.TokenServiceServer.
func (s *Server) CreateConnection(ctx context.Context, req *tokenv1.CreateConnectionRequest) (*tokenv1.CreateConnectionResponse, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	c, err := connectionFromRequest(req, now)
	if err != nil {
		return nil, err
	}
	stored, err := s.store.ConnectionPut(ctx, c)
	if err != nil {
		return nil, err
	}
	return &tokenv1.CreateConnectionResponse{Connection: toProto(stored)}, nil
}

func connectionFromRequest(req *tokenv1.CreateConnectionRequest, now time.Time) (*store.Connection, error) {
	if err := validate.First(
		validate.Name("provider", req.GetProvider()),
		validate.ID("connection_id", req.GetConnectionId(), 128),
		validate.Text("access_token", req.GetAccessToken(), maxTokenBytes, true),
		validate.Text("refresh_token", req.GetRefreshToken(), maxTokenBytes, false),
		validate.Text("token_type", req.GetTokenType(), 32, false),
		validate.HTTPURL("api_domain", req.GetApiDomain()),
	); err != nil {
		return nil, err
	}
	if len(req.GetScopes()) > maxScopes {
		return nil, errs.Invalid("scopes must hold at most %d entries", maxScopes)
	}
	for _, sc := range req.GetScopes() {
		if err := validate.Text("scopes", sc, maxScopeBytes, true); err != nil {
			return nil, err
		}
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
		expire = now.Add(req.GetExpiresIn().AsDuration())
	default:
		return nil, errs.Invalid("expire_time or expires_in is required")
	}
	tokenType := req.GetTokenType()
	if tokenType == "" {
		tokenType = "Bearer"
	}
	return &store.Connection{
		Provider:     req.GetProvider(),
		ConnectionID: req.GetConnectionId(),
		AccessToken:  req.GetAccessToken(),
		RefreshToken: req.GetRefreshToken(),
		TokenType:    tokenType,
		ExpireTime:   expire.UTC().Truncate(time.Microsecond),
		Scopes:       req.GetScopes(),
		APIDomain:    req.GetApiDomain(),
		Status:       store.StatusActive,
		CreateTime:   now,
		UpdateTime:   now,
	}, nil
}

// GetConnection implements tokenv1.TokenServiceServer.
func (s *Server) GetConnection(ctx context.Context, req *tokenv1.GetConnectionRequest) (*tokenv1.GetConnectionResponse, error) {
	if err := validateKey(req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	c, err := s.store.ConnectionGet(ctx, req.GetProvider(), req.GetConnectionId())
	if err != nil {
		return nil, err
	}
	return &tokenv1.GetConnectionResponse{Connection: toProto(c)}, nil
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
		p.AfterProvider, p.AfterConnectionID = parts[0], parts[1]
	}
	cs, err := s.store.ConnectionList(ctx, p)
	if err != nil {
		return nil, err
	}
	resp := &tokenv1.ListConnectionsResponse{}
	if len(cs) > size {
		cs = cs[:size]
		last := cs[size-1]
		resp.NextPageToken = pagetoken.Encode(last.Provider, last.ConnectionID)
	}
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
	if err := s.store.ConnectionDelete(ctx, req.GetProvider(), req.GetConnectionId()); err != nil {
		return nil, err
	}
	return &tokenv1.DeleteConnectionResponse{}, nil
}

func validateKey(provider, id string) error {
	return validate.First(validate.Name("provider", provider), validate.ID("connection_id", id, 128))
}

// toProto converts a stored connection to its metadata. Token material never leaves here.
func toProto(c *store.Connection) *tokenv1.Connection {
	return &tokenv1.Connection{
		Provider:        c.Provider,
		ConnectionId:    c.ConnectionID,
		TokenType:       c.TokenType,
		ExpireTime:      timestamppb.New(c.ExpireTime),
		Scopes:          c.Scopes,
		ApiDomain:       c.APIDomain,
		Status:          tokenv1.ConnectionStatus(c.Status),
		HasRefreshToken: c.RefreshToken != "",
		CreateTime:      timestamppb.New(c.CreateTime),
		UpdateTime:      timestamppb.New(c.UpdateTime),
	}
}
