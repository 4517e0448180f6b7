// Package noop is the benchmark's baseline RPC: a unary call that does nothing, registered on the bench
// server beside the token service so that it passes through the same guard (authentication, the
// token:read scope check, the per-credential rate limiter) and the same observing interceptor as
// GetAccessToken. The difference between the two is then the token path alone.
//
// The service is described by hand (no .proto): it exists only in the benchmark.
package noop

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/auth"
)

// Method is the no-op's full gRPC method name.
const Method = "/sergas.bench.v1.Bench/Noop"

// Policy requires token:read, the scope GetAccessToken needs.
var Policy = PolicyFor(auth.ScopeTokenRead)

// PolicyFor makes the no-op need scope, the scope of the call it is the baseline for (audit:write for
// RecordEvent), so that it spends the same class's rate-limit budget.
func PolicyFor(scope string) auth.Policy {
	return auth.Policy{Scopes: map[string]string{Method: scope}}
}

type server interface{}

type impl struct{}

// Desc describes the service for grpc.Server.RegisterService; its implementation is Impl.
var Desc = grpc.ServiceDesc{
	ServiceName: "sergas.bench.v1.Bench",
	HandlerType: (*server)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Noop",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, nil }
			if icpt == nil {
				return h(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: Method}, h)
		},
	}},
	Metadata: "bench",
}

// Impl is the (stateless) implementation to register with Desc.
var Impl any = impl{}

// Call makes one no-op call on conn.
func Call(ctx context.Context, conn grpc.ClientConnInterface) error {
	return conn.Invoke(ctx, Method, &emptypb.Empty{}, &emptypb.Empty{})
}
