package clientaddr

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/sergas/core/internal/config"
)

var (
	secretHex   = strings.Repeat("ab", 32)
	otherHex    = strings.Repeat("cd", 32)
	secretBytes = func() []byte { b, _ := decodeSecret(secretHex); return b }()
	otherBytes  = func() []byte { b, _ := decodeSecret(otherHex); return b }()
)

func incoming(peerAddr string, md ...string) context.Context {
	a, _ := net.ResolveTCPAddr("tcp", peerAddr)
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: a})
	if len(md) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(md...))
	}
	return ctx
}

func loadProxies(t *testing.T, vars map[string]string, development bool) Trusted {
	t.Helper()
	env := config.FromMap(vars)
	tr := LoadProxies(env, development)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	return tr
}

// A peer on a trusted network is believed only when its report carries a fresh proof made with
// CLIENT_ADDR_SECRET for exactly that address.
func TestFromGRPCNeedsAProof(t *testing.T) {
	tr := loadProxies(t, map[string]string{"CLIENT_ADDR_SECRET": secretHex, "GRPC_TRUSTED_PROXIES": "10.0.0.0/8"}, false)
	now := time.Unix(1_800_000_000, 0)
	const client, gw = "198.51.100.7", "10.1.2.3:4000"
	cases := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"valid", incoming(gw, MetadataKey, client, ProofKey, Proof(secretBytes, client, now)), client},
		{"valid, clocks 2 minutes apart", incoming(gw, MetadataKey, client, ProofKey, Proof(secretBytes, client, now.Add(2*time.Minute))), client},
		{"wrong secret", incoming(gw, MetadataKey, client, ProofKey, Proof(otherBytes, client, now)), "10.1.2.3"},
		{"stale", incoming(gw, MetadataKey, client, ProofKey, Proof(secretBytes, client, now.Add(-MaxProofAge-time.Second))), "10.1.2.3"},
		{"from the future", incoming(gw, MetadataKey, client, ProofKey, Proof(secretBytes, client, now.Add(MaxProofAge+time.Second))), "10.1.2.3"},
		{"replayed for another address", incoming(gw, MetadataKey, "203.0.113.66", ProofKey, Proof(secretBytes, client, now)), "10.1.2.3"},
		{"missing proof", incoming(gw, MetadataKey, client), "10.1.2.3"},
		{"garbled proof", incoming(gw, MetadataKey, client, ProofKey, "x.zz"), "10.1.2.3"},
		{"two proofs", incoming(gw, MetadataKey, client, ProofKey, Proof(secretBytes, client, now), ProofKey, Proof(secretBytes, client, now)), "10.1.2.3"},
		{"untrusted peer with a valid proof", incoming("192.0.2.1:4000", MetadataKey, client, ProofKey, Proof(secretBytes, client, now)), "192.0.2.1"},
		// The secret is set, so development mode does not excuse a missing proof either.
		{"loopback is not trusted here", incoming("127.0.0.1:4000", MetadataKey, client, ProofKey, Proof(secretBytes, client, now)), "127.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fromGRPC(c.ctx, tr, func() time.Time { return now }); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	if tr.Warning() != "" {
		t.Errorf("warning with a secret: %q", tr.Warning())
	}
}

// Without CLIENT_ADDR_SECRET: development believes loopback as before; production ignores an unproven
// report (a mesh sidecar or another pod on loopback cannot choose its address), warns, and believes
// only a gateway in its own process, which signs with the process's key.
func TestFromGRPCWithoutSecret(t *testing.T) {
	const client = "198.51.100.7"
	unproven := incoming("127.0.0.1:4000", MetadataKey, client)
	otherProcess := incoming("127.0.0.1:4000", MetadataKey, client, ProofKey, Proof(otherBytes, client, time.Now()))
	sameProcess := incoming("127.0.0.1:4000", MetadataKey, client, ProofKey, Proof(processSecret(), client, time.Now()))

	dev := loadProxies(t, map[string]string{}, true)
	if got := FromGRPC(unproven, dev); got != client {
		t.Errorf("development, loopback: got %q", got)
	}
	if got := FromGRPC(incoming("10.0.0.1:4000", MetadataKey, client), loadProxies(t, map[string]string{"GRPC_TRUSTED_PROXIES": "10.0.0.0/8"}, true)); got != "10.0.0.1" {
		t.Errorf("development believed an unproven report from a non-loopback peer: %q", got)
	}
	if dev.Warning() != "" {
		t.Errorf("development warns: %q", dev.Warning())
	}

	prod := loadProxies(t, map[string]string{}, false)
	for name, ctx := range map[string]context.Context{"unproven": unproven, "another process's key": otherProcess} {
		if got := FromGRPC(ctx, prod); got != "127.0.0.1" {
			t.Errorf("production, %s: got %q, want the connection's", name, got)
		}
	}
	if got := FromGRPC(sameProcess, prod); got != client {
		t.Errorf("production, same process: got %q", got)
	}
	if !strings.Contains(prod.Warning(), "CLIENT_ADDR_SECRET") {
		t.Errorf("production without a secret does not warn: %q", prod.Warning())
	}
}

func TestLoadSecret(t *testing.T) {
	raw := []byte(strings.Repeat("k", 32))
	for name, v := range map[string]string{
		"hex": strings.Repeat("6b", 32), "base64": base64.StdEncoding.EncodeToString(raw),
		"raw base64": base64.RawStdEncoding.EncodeToString(raw), "url base64": base64.URLEncoding.EncodeToString(raw),
	} {
		env := config.FromMap(map[string]string{SecretVar: v})
		key, ok := LoadSecret(env)
		if !ok || string(key) != string(raw) || env.Err() != nil {
			t.Errorf("%s: key %q configured %v err %v", name, key, ok, env.Err())
		}
	}
	for name, v := range map[string]string{"short": strings.Repeat("6b", 31), "not encoded": "correct horse battery staple!!!!!!!!!!!!!!"} {
		env := config.FromMap(map[string]string{SecretVar: v})
		if _, ok := LoadSecret(env); ok || env.Err() == nil {
			t.Errorf("%s accepted", name)
		} else if strings.Contains(env.Err().Error(), v) {
			t.Errorf("%s: the error repeats the secret: %v", name, env.Err())
		}
	}
	if key, ok := LoadSecret(config.FromMap(nil)); ok || len(key) < MinSecretBytes {
		t.Errorf("unset: key of %d bytes, configured %v", len(key), ok)
	}
}

// Outgoing sends a report with a proof FromGRPC believes.
func TestOutgoingProves(t *testing.T) {
	ctx := Outgoing(context.Background(), "2001:db8::7", secretBytes)
	md, _ := metadata.FromOutgoingContext(ctx)
	in := metadata.NewIncomingContext(peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv6loopback, Port: 1}}), md)
	tr := loadProxies(t, map[string]string{"CLIENT_ADDR_SECRET": secretHex}, false)
	if got := FromGRPC(in, tr); got != "2001:db8::7" {
		t.Fatalf("got %q", got)
	}
	if got := Outgoing(context.Background(), Unknown, secretBytes); got != context.Background() {
		t.Fatal("an unknown address was reported")
	}
}
