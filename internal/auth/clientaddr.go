package auth

import "context"

type callKey struct{}

// Call is what the guard finds out about an RPC: the client's address and the principal. It is held in
// the RPC's context by pointer, so that an interceptor outside the guard (the server's log line) can
// hand the guard an empty one and read what the guard found, also for a refused call whose context
// never reaches a handler; and one value in the context carries both, where two context values and a
// closure cost three allocations more on every call.
type Call struct {
	addr      string
	principal *Principal
}

// ClientAddr is the address the guard found ("" before the guard has run, or without a guard). The
// guard runs in the goroutine of the RPC, so this may be called from it without locking.
func (c *Call) ClientAddr() string { return c.addr }

// callCtx is a context carrying a Call, in one allocation.
type callCtx struct {
	context.Context
	call Call
}

func (c *callCtx) Value(key any) any {
	if key == (callKey{}) {
		return &c.call
	}
	return c.Context.Value(key)
}

func callOf(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// with returns ctx carrying a new Call that starts as the one ctx carries (if any).
func with(ctx context.Context) (context.Context, *Call) {
	cc := &callCtx{Context: ctx}
	if c := callOf(ctx); c != nil {
		cc.call = *c
	}
	return cc, &cc.call
}

// WithClientAddr returns ctx carrying the client's address. When ctx carries an empty place for it
// (WithClientAddrSlot), the address is put there and ctx is returned as it is.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	ctx, _ = withClientAddr(ctx, addr)
	return ctx
}

// withClientAddr is WithClientAddr that also returns the Call it filled, which the guard then completes
// with the principal: a Call of its own, either fresh or the empty one the server made for this RPC.
func withClientAddr(ctx context.Context, addr string) (context.Context, *Call) {
	if c := callOf(ctx); c != nil && c.addr == "" && c.principal == nil {
		c.addr = addr
		return ctx, c
	}
	ctx, c := with(ctx)
	c.addr = addr
	return ctx, c
}

// WithClientAddrSlot returns ctx with an empty place for the client's address, and the Call that the
// guard fills in.
func WithClientAddrSlot(ctx context.Context) (context.Context, *Call) {
	cc := &callCtx{Context: ctx}
	return cc, &cc.call
}

// ClientAddr is the address of the client behind the current RPC, as the guard determined it: the
// connection's peer, or the address a trusted proxy (the gateway) reported in x-sergas-client-ip (see
// internal/clientaddr and GRPC_TRUSTED_PROXIES). It is set for every RPC that passed a Guard, public
// methods included, and is "" elsewhere. Handlers use it to record or limit by the same address that
// denials and per-address limits use.
func ClientAddr(ctx context.Context) string {
	if c := callOf(ctx); c != nil {
		return c.addr
	}
	return ""
}
