// Package grpcserver starts a service's gRPC server the same way for every service: listener first,
// health and reflection, one interceptor for recovery, error mapping, logs and metrics, and a graceful
// stop that flips readiness, drains in-flight RPCs and only then returns.
package grpcserver

import (
	"strings"
	"time"

	"github.com/sergas/core/internal/config"
)

// Config is a gRPC server's listener and limits.
type Config struct {
	Addr            string
	MaxRecvBytes    int
	MaxSendBytes    int
	ShutdownTimeout time.Duration
	// MaxConcurrentStreams caps RPCs in flight on one connection.
	MaxConcurrentStreams int
	// MaxHeaderListBytes caps the metadata (headers) of one RPC; without it a caller may send a
	// megabyte of headers that the server decodes and holds before any check runs.
	MaxHeaderListBytes int
}

// DefaultMaxHeaderListBytes fits an 8 KiB bearer token (the largest the authenticator reads) with room
// for the rest of a call's metadata.
const DefaultMaxHeaderListBytes = 16 << 10

// LoadConfig reads <SERVICE>_GRPC_ADDR (default defaultAddr) and the shared limits.
func LoadConfig(env *config.Env, service, defaultAddr string) Config {
	return Config{
		Addr:                 env.String(strings.ToUpper(service)+"_GRPC_ADDR", defaultAddr),
		MaxRecvBytes:         env.Int("GRPC_MAX_RECV_MSG_BYTES", 4<<20, 1<<10, 64<<20),
		MaxSendBytes:         env.Int("GRPC_MAX_SEND_MSG_BYTES", 16<<20, 1<<10, 256<<20),
		ShutdownTimeout:      env.Duration("SHUTDOWN_TIMEOUT", 15*time.Second, 0, 10*time.Minute),
		MaxConcurrentStreams: env.Int("GRPC_MAX_CONCURRENT_STREAMS", 1000, 1, 1_000_000),
		MaxHeaderListBytes:   env.Int("GRPC_MAX_HEADER_LIST_BYTES", DefaultMaxHeaderListBytes, 4<<10, 1<<20),
	}
}
