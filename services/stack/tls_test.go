package stack_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
)

// testCA issues certificates for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sergas test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	writePEM(t, ca.path("ca.pem"), "CERTIFICATE", der)
	return ca
}

func (ca *testCA) path(name string) string { return filepath.Join(ca.dir, name) }

// issue writes name.pem and name-key.pem for a leaf certificate.
func (ca *testCA) issue(t *testing.T, name, cn string, serial int64, uris ...string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = ca.path(name+".pem"), ca.path(name+"-key.pem")
	writePEM(t, keyFile, "PRIVATE KEY", kb)
	writePEM(t, certFile, "CERTIFICATE", der)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as a certificate manager would replace it
		t.Fatal(err)
	}
}

func (ca *testCA) clientTLS(t *testing.T, certFile, keyFile string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

func TestTLSAndMutualTLS(t *testing.T) {
	ca := newCA(t)
	serverCert, serverKey := ca.issue(t, "server", "sergas-services", 10)
	gwCert, gwKey := ca.issue(t, "gateway", "sergas-gateway", 11) // deliberately not mapped to any scope
	agentCert, agentKey := ca.issue(t, "agent", "agent-7", 12, "spiffe://sergas.test/agent")
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	r := start(t, map[string]string{
		"TLS_DISABLED": "", "TLS_CERT_FILE": serverCert, "TLS_KEY_FILE": serverKey, "TLS_CLIENT_CA_FILE": ca.path("ca.pem"),
		"GRPC_CLIENT_CA_FILE": ca.path("ca.pem"), "GRPC_CLIENT_CERT_FILE": gwCert, "GRPC_CLIENT_KEY_FILE": gwKey,
		"GRPC_CLIENT_SERVER_NAME": "localhost",
		"AUTH_API_KEYS":           authtest.JSON(admin), "TEST_ADMIN_KEY": admin.Key,
		"AUTH_TLS_IDENTITIES": `{"spiffe://sergas.test/agent": ["token:read"]}`,
	})
	dial := func(creds credentials.TransportCredentials, opts ...grpc.DialOption) tokenv1.TokenServiceClient {
		conn, err := grpc.NewClient(r.addrs.Token, append(opts, grpc.WithTransportCredentials(creds))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return tokenv1.NewTokenServiceClient(conn)
	}
	list := func(c tokenv1.TokenServiceClient) error {
		_, err := c.ListConnections(t.Context(), &tokenv1.ListConnectionsRequest{})
		return err
	}

	if err := list(dial(insecure.NewCredentials(), authtest.Bearer(admin.Key))); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext client against a TLS listener: %v", err)
	}
	if err := list(dial(credentials.NewTLS(ca.clientTLS(t, "", "")), authtest.Bearer(admin.Key))); status.Code(err) != codes.Unavailable {
		t.Errorf("TLS client without a certificate against an mTLS listener: %v", err)
	}
	agent := dial(credentials.NewTLS(ca.clientTLS(t, agentCert, agentKey)))
	if err := list(agent); err != nil {
		t.Errorf("agent identity mapped to token:read: %v", err)
	}
	_, err := agent.CreateConnection(t.Context(), &tokenv1.CreateConnectionRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("agent identity used beyond its scopes: %v", err)
	}
	// A bearer token wins over the certificate identity.
	withKey := dial(credentials.NewTLS(ca.clientTLS(t, agentCert, agentKey)), authtest.Bearer(admin.Key))
	if _, err := withKey.CreateConnection(t.Context(), &tokenv1.CreateConnectionRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("admin key over mTLS: %v, want InvalidArgument from the handler", err)
	}

	// The gateway serves HTTPS without client certificates and reaches the services over mTLS; its own
	// certificate lends REST callers nothing.
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.clientTLS(t, "", "")}}
	get := func(key string) int {
		req, _ := http.NewRequest("GET", "https://"+r.addrs.Gateway+"/v1/connections", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := https.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(admin.Key); code != 200 {
		t.Errorf("REST over HTTPS and mTLS with a key: %d", code)
	}
	if code := get(""); code != 401 {
		t.Errorf("REST without a key: %d, want 401 (the gateway's certificate must not authorise callers)", code)
	}

	// A replaced certificate is served without a restart. Precondition: the first one is being served.
	if conn, err := tls.Dial("tcp", r.addrs.Token, ca.clientTLS(t, agentCert, agentKey)); err != nil {
		t.Fatal(err)
	} else {
		serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
		conn.Close()
		if serial != 10 {
			t.Fatalf("precondition: serving certificate %d before the replacement, want 10", serial)
		}
	}
	ca.issue(t, "server", "sergas-services", 99)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.Dial("tcp", r.addrs.Token, ca.clientTLS(t, agentCert, agentKey))
		if err != nil {
			t.Fatal(err)
		}
		serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
		conn.Close()
		if serial == 99 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving certificate %d after replacing it", serial)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := https.Get("https://" + r.addrs.Gateway + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz over mTLS health checks: %d", resp.StatusCode)
	}
}
