package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// Message limits matching the services' defaults (GRPC_MAX_RECV_MSG_BYTES 4 MiB, GRPC_MAX_SEND_MSG_BYTES
// 16 MiB): a request the service would refuse fails here, before it is sent, and every answer it may send
// is accepted.
const (
	DefaultMaxSendBytes = 4 << 20
	DefaultMaxRecvBytes = 16 << 20
)

// Keepalive: the services refuse clients that ping more often than every 10 s (and close the connection
// with ENHANCE_YOUR_CALM), so pings go every 30 s, and only while an RPC (a Receive stream) is open: an
// idle connection is closed by the service after 15 minutes and re-dialled on the next call.
var keepaliveParams = keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}

// Config says how to reach one service. The zero value of every field but Address is a safe default:
// TLS against the system's roots, no bearer credential, the default retry policy.
type Config struct {
	// Address is host:port, or any gRPC target ("dns:///token.sergas:50051" for client-side balancing
	// over a headless service).
	Address string

	// CAFile (PEM) is trusted instead of the system's roots; CAPEM is the same, in memory.
	CAFile string
	CAPEM  []byte
	// CertFile and KeyFile are the client certificate for mTLS. They are re-read when they change on disk
	// (a certificate manager replacing them), at the next handshake.
	CertFile, KeyFile string
	// ServerName overrides the name the service's certificate must carry (default: the address's host).
	ServerName string
	// Plaintext dials without TLS: only for a mesh sidecar that encrypts on the client's behalf, or a
	// development stack on loopback. It must be asked for; nothing falls back to it.
	Plaintext bool

	// Bearer is the credential sent as "authorization: Bearer …" on every call: an API key
	// (sgk_<id>.<secret>) or a JWT. BearerFunc, when set, is called for every call instead (a JWT that
	// the caller refreshes).
	Bearer     string
	BearerFunc func(ctx context.Context) (string, error)
	// AllowBearerOverPlaintext lets a bearer credential go over a plaintext connection (a sidecar on
	// loopback that encrypts, or a development stack). Without it Dial refuses the combination, because
	// anyone on the path would read the key.
	AllowBearerOverPlaintext bool

	// Retry bounds the retries of safe calls; the zero value is DefaultRetry.
	Retry RetryPolicy

	// MaxSendBytes and MaxRecvBytes override the message limits (when the service's are raised).
	MaxSendBytes, MaxRecvBytes int

	// DialOptions are appended last (interceptors for tracing, a custom dialer).
	DialOptions []grpc.DialOption
}

// Conn is a connection to one service with the retry policy installed on every unary call.
type Conn struct {
	cc    *grpc.ClientConn
	retry RetryPolicy
}

// Dial prepares a connection (gRPC connects lazily, on the first call) with the transport security,
// credential, limits and retry policy of cfg.
func Dial(cfg Config) (*Conn, error) {
	if cfg.Address == "" {
		return nil, errors.New("client: Address is empty")
	}
	hasBearer := cfg.Bearer != "" || cfg.BearerFunc != nil
	if cfg.Plaintext && hasBearer && !cfg.AllowBearerOverPlaintext {
		return nil, errors.New("client: refusing to send a bearer credential over plaintext; use TLS, or set AllowBearerOverPlaintext for a sidecar on loopback")
	}
	if cfg.Plaintext && (cfg.CAFile != "" || cfg.CAPEM != nil || cfg.CertFile != "") {
		return nil, errors.New("client: Plaintext contradicts CAFile, CAPEM and CertFile")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("client: CertFile and KeyFile must be set together")
	}
	var creds credentials.TransportCredentials
	if cfg.Plaintext {
		creds = insecure.NewCredentials()
	} else {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tc)
	}
	retry := cfg.Retry.withDefaults()
	maxSend, maxRecv := cfg.MaxSendBytes, cfg.MaxRecvBytes
	if maxSend <= 0 {
		maxSend = DefaultMaxSendBytes
	}
	if maxRecv <= 0 {
		maxRecv = DefaultMaxRecvBytes
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepaliveParams),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxSend), grpc.MaxCallRecvMsgSize(maxRecv)),
		grpc.WithUserAgent("sergas-go-client"),
		// gRPC's own retry (from a service config) would retry behind our back with other rules.
		grpc.WithDisableRetry(),
		grpc.WithChainUnaryInterceptor(retry.unaryInterceptor),
		// Spread calls over every address the name resolves to: a dns:/// name of a headless Kubernetes
		// Service lists each pod, and pick_first would send everything to one of them.
		grpc.WithDefaultServiceConfig(roundRobin),
	}
	if hasBearer {
		opts = append(opts, grpc.WithPerRPCCredentials(&bearer{static: cfg.Bearer, fn: cfg.BearerFunc, secure: !cfg.Plaintext}))
	}
	cc, err := grpc.NewClient(cfg.Address, append(opts, cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Conn{cc: cc, retry: retry}, nil
}

// ClientConn is the underlying connection, for the generated clients of other services or health checks.
func (c *Conn) ClientConn() *grpc.ClientConn { return c.cc }

// Token is the token service's generated client on this connection.
func (c *Conn) Token() tokenv1.TokenServiceClient { return tokenv1.NewTokenServiceClient(c.cc) }

// Audit is the audit service's generated client on this connection.
func (c *Conn) Audit() auditv1.AuditServiceClient { return auditv1.NewAuditServiceClient(c.cc) }

// Webhook is the webhook service's generated client on this connection.
func (c *Conn) Webhook() webhookv1.WebhookServiceClient {
	return webhookv1.NewWebhookServiceClient(c.cc)
}

// Close closes the connection; calls in flight fail with CANCELED.
func (c *Conn) Close() error { return c.cc.Close() }

// tlsConfig builds the client's TLS: the system roots or the given CA, and the client certificate.
func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if cfg.CAFile != "" || cfg.CAPEM != nil {
		pem := cfg.CAPEM
		if cfg.CAFile != "" {
			b, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("client: read CAFile: %w", err)
			}
			pem = append(append([]byte(nil), pem...), b...)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("client: the CA holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		kp := &keyPair{certFile: cfg.CertFile, keyFile: cfg.KeyFile}
		if _, err := kp.get(); err != nil { // a bad file fails Dial, not the first call
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	}
	return tc, nil
}

// roundRobin is the default service config: round_robin over the resolved addresses (a server's own
// service config, from DNS TXT records, still wins).
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`
