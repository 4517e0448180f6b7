package auth

import "context"

type clientAddrKey struct{}

// addrSlot holds the client's address in a context. It is a pointer so that an interceptor outside the
// guard (the server's log line) can hand the guard an empty one and read what the guard found, also
// for a refused call whose context never reaches a handler.
type addrSlot struct{ addr string }

// WithClientAddr returns ctx carrying the client's address. When ctx carries an empty place for it
// (WithClientAddrSlot), the address is put there and ctx is returned as it is.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	if s, ok := ctx.Value(clientAddrKey{}).(*addrSlot); ok && s.addr == "" {
		s.addr = addr
		return ctx
	}
	return context.WithValue(ctx, clientAddrKey{}, &addrSlot{addr: addr})
}

// WithClientAddrSlot returns ctx with an empty place for the client's address, and a function that
// reads what the guard put there ("" before the guard has run, or without a guard). The guard runs in
// the goroutine of the RPC, so the function may be called from it without locking.
func WithClientAddrSlot(ctx context.Context) (context.Context, func() string) {
	s := &addrSlot{}
	return context.WithValue(ctx, clientAddrKey{}, s), func() string { return s.addr }
}

// ClientAddr is the address of the client behind the current RPC, as the guard determined it: the
// connection's peer, or the address a trusted proxy (the gateway) reported in x-sergas-client-ip (see
// internal/clientaddr and GRPC_TRUSTED_PROXIES). It is set for every RPC that passed a Guard, public
// methods included, and is "" elsewhere. Handlers use it to record or limit by the same address that
// denials and per-address limits use.
func ClientAddr(ctx context.Context) string {
	if s, ok := ctx.Value(clientAddrKey{}).(*addrSlot); ok {
		return s.addr
	}
	return ""
}
