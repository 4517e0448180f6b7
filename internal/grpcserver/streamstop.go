package grpcserver

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errStopping is the cause of a stream context cancelled because the server began to stop.
var errStopping = errors.New("server stopping")

// streamStop ends streams when the server begins to stop. A graceful stop waits for every RPC in flight,
// and a long stream (an audit export, a consumer's receive loop) would hold it until ShutdownTimeout and
// then be cut without a word. Instead each stream's context is cancelled when the stop begins, so its
// handler finishes what it is doing (a handler that drains does so then) and returns; the client gets
// UNAVAILABLE saying to resume, which it can tell apart from its own cancellation. Unary calls are left
// to finish: they are short, and cutting them would turn a committed write into an error.
type streamStop struct {
	once sync.Once
	ch   chan struct{}
}

func newStreamStop() *streamStop { return &streamStop{ch: make(chan struct{})} }

// begin cancels every stream, those in flight and any that start afterwards.
func (st *streamStop) begin() { st.once.Do(func() { close(st.ch) }) }

func (st *streamStop) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	go func() {
		select {
		case <-st.ch:
			cancel(errStopping)
		case <-ctx.Done():
		}
	}()
	err := h(srv, &stoppableStream{ServerStream: ss, ctx: ctx})
	if err != nil && errors.Is(context.Cause(ctx), errStopping) && ss.Context().Err() == nil {
		return status.Error(codes.Unavailable, "the server is stopping; call again to resume after the last message received")
	}
	return err
}

// stoppingKey is the context key under which unary calls find the stop channel.
type stoppingKey struct{}

// unary lets a unary handler that waits (a long poll) see the stop begin, through Stopping, and answer
// what it has instead of holding the graceful stop until ShutdownTimeout cuts it. Its context is not
// cancelled: a unary call that is writing must finish.
func (st *streamStop) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(context.WithValue(ctx, stoppingKey{}, st.ch), req)
}

// Stopping returns a channel closed when the server serving ctx's call begins to stop; nil (never
// closed) outside such a call.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey{}).(chan struct{})
	return ch
}

// stoppableStream is a server stream whose context ends when the server begins to stop.
type stoppableStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stoppableStream) Context() context.Context { return s.ctx }
