// Package tlsconf builds the TLS configurations of every listener and client: server certificates and
// client CAs re-read when their files change, mutual TLS when a client CA is configured, and plaintext
// only when asked for explicitly.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/filewatch"
)

// Config names the certificate files.
type Config struct {
	// Server side (every gRPC listener, and the gateway's HTTP listener).
	CertFile, KeyFile string
	ClientCAFile      string // when set, gRPC listeners require client certificates signed by it (mTLS)
	Disabled          bool   // TLS_DISABLED=true: plaintext, on purpose
	// Client side (gateway to services, services to the audit service).
	ClientTrustCAFile string
	ClientCertFile    string
	ClientKeyFile     string
	ClientServerName  string
	// Development allows plaintext clients without TLS_DISABLED.
	Development bool
}

// LoadConfig reads the TLS_* and GRPC_CLIENT_* variables. Outside development mode a server without a
// certificate refuses to start unless TLS_DISABLED=true.
func LoadConfig(env *config.Env, development bool) Config {
	c := Config{
		CertFile:          env.String("TLS_CERT_FILE", ""),
		KeyFile:           env.String("TLS_KEY_FILE", ""),
		ClientCAFile:      env.String("TLS_CLIENT_CA_FILE", ""),
		Disabled:          env.Bool("TLS_DISABLED", false),
		ClientTrustCAFile: env.String("GRPC_CLIENT_CA_FILE", ""),
		ClientCertFile:    env.String("GRPC_CLIENT_CERT_FILE", ""),
		ClientKeyFile:     env.String("GRPC_CLIENT_KEY_FILE", ""),
		ClientServerName:  env.String("GRPC_CLIENT_SERVER_NAME", ""),
		Development:       development,
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		env.Fail("TLS_CERT_FILE", "and TLS_KEY_FILE must be set together")
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		env.Fail("GRPC_CLIENT_CERT_FILE", "and GRPC_CLIENT_KEY_FILE must be set together")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		env.Fail("TLS_CLIENT_CA_FILE", "needs TLS_CERT_FILE and TLS_KEY_FILE")
	}
	if c.CertFile != "" && c.Disabled {
		env.Fail("TLS_DISABLED", "contradicts TLS_CERT_FILE")
	}
	if !development && !c.Disabled && c.CertFile == "" {
		env.Fail("TLS_CERT_FILE", "must be set outside development mode; set TLS_DISABLED=true for plaintext (a mesh sidecar terminating mTLS)")
	}
	return c
}

// Server returns the TLS configuration for listeners, or nil for plaintext. With requireClientCert, and a
// client CA configured, clients must present a certificate it signed.
func (c Config) Server(requireClientCert bool, log *slog.Logger) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	certs, err := watchKeyPair(c.CertFile, c.KeyFile, "TLS_CERT_FILE/TLS_KEY_FILE", log)
	if err != nil {
		return nil, err
	}
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.Get(), nil },
	}
	if !requireClientCert || c.ClientCAFile == "" {
		return base, nil
	}
	cas, err := filewatch.New([]string{c.ClientCAFile}, time.Second, func() (*x509.CertPool, error) {
		return loadPool(c.ClientCAFile, "TLS_CLIENT_CA_FILE")
	}, func(err error) { log.Error("client CA not reloaded; keeping the previous one", "error", err.Error()) })
	if err != nil {
		return nil, err
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = cas.Get()
		return cfg, nil
	}
	return base, nil
}

// Client returns transport credentials for dialing the services: TLS trusting GRPC_CLIENT_CA_FILE, or
// the system's roots when it is unset (presenting GRPC_CLIENT_CERT_FILE for mTLS); plaintext only in
// development mode or with TLS_DISABLED=true.
func (c Config) Client(log *slog.Logger) (credentials.TransportCredentials, error) {
	if c.ClientTrustCAFile == "" && (c.Disabled || c.Development) {
		if c.ClientCertFile != "" {
			return nil, errors.New("GRPC_CLIENT_CERT_FILE needs GRPC_CLIENT_CA_FILE")
		}
		return insecure.NewCredentials(), nil
	}
	var pool *x509.CertPool // nil: the system's roots
	if c.ClientTrustCAFile != "" {
		var err error
		if pool, err = loadPool(c.ClientTrustCAFile, "GRPC_CLIENT_CA_FILE"); err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: c.ClientServerName}
	if c.ClientCertFile != "" {
		cert, err := watchKeyPair(c.ClientCertFile, c.ClientKeyFile, "GRPC_CLIENT_CERT_FILE/GRPC_CLIENT_KEY_FILE", log)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.Get(), nil }
	}
	return credentials.NewTLS(cfg), nil
}

// watchKeyPair loads a certificate and key, re-reading them when either file changes.
func watchKeyPair(certFile, keyFile, names string, log *slog.Logger) (*filewatch.Cached[*tls.Certificate], error) {
	return filewatch.New([]string{certFile, keyFile}, time.Second, func() (*tls.Certificate, error) {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load %s as a certificate and key", names)
		}
		return &cert, nil
	}, func(err error) {
		log.Error("certificate not reloaded; keeping the previous one", "files", names, "error", err.Error())
	})
}

func loadPool(path, name string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s", name)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s holds no PEM certificate", name)
	}
	return pool, nil
}
