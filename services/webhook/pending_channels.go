package webhook

// Placeholders for the channel RPCs while they are being built; each is deleted in the commit that
// implements it. None may remain when a session ends.

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

func (s *Server) CreateChannel(context.Context, *webhookv1.CreateChannelRequest) (*webhookv1.CreateChannelResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) GetChannel(context.Context, *webhookv1.GetChannelRequest) (*webhookv1.GetChannelResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) ListChannels(context.Context, *webhookv1.ListChannelsRequest) (*webhookv1.ListChannelsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) RenewChannel(context.Context, *webhookv1.RenewChannelRequest) (*webhookv1.RenewChannelResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) DisableChannel(context.Context, *webhookv1.DisableChannelRequest) (*webhookv1.DisableChannelResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}
