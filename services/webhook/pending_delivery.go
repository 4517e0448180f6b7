package webhook

// Placeholders for the delivery RPCs (issue #10) while they are being built; each is deleted in the
// commit that implements it. None may remain when a session ends.

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

func (s *Server) Poll(context.Context, *webhookv1.PollRequest) (*webhookv1.PollResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) Ack(context.Context, *webhookv1.AckRequest) (*webhookv1.AckResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) Nack(context.Context, *webhookv1.NackRequest) (*webhookv1.NackResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) ExtendLease(context.Context, *webhookv1.ExtendLeaseRequest) (*webhookv1.ExtendLeaseResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) GetDelivery(context.Context, *webhookv1.GetDeliveryRequest) (*webhookv1.GetDeliveryResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) ListDeliveries(context.Context, *webhookv1.ListDeliveriesRequest) (*webhookv1.ListDeliveriesResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) RedriveDeliveries(context.Context, *webhookv1.RedriveDeliveriesRequest) (*webhookv1.RedriveDeliveriesResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not built yet")
}

func (s *Server) Receive(*webhookv1.ReceiveRequest, grpc.ServerStreamingServer[webhookv1.ReceiveResponse]) error {
	return status.Error(codes.Unimplemented, "not built yet")
}
