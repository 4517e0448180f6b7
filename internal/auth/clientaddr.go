package auth

import "context"

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the client's address.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

// ClientAddr is the address of the client behind the current RPC, as the guard determined it: the
// connection's peer, or the address a trusted proxy (the gateway) reported in x-sergas-client-ip (see
// internal/clientaddr and GRPC_TRUSTED_PROXIES). It is set for every RPC that passed a Guard, public
// methods included, and is "" elsewhere. Handlers use it to record or limit by the same address that
// denials and per-address limits use.
func ClientAddr(ctx context.Context) string {
	a, _ := ctx.Value(clientAddrKey{}).(string)
	return a
}
