package gateway

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/config"
)

// Every RPC proves its client address with CLIENT_ADDR_SECRET, and a proof a client sends never reaches
// the services.
func TestRPCsProveTheClientAddress(t *testing.T) {
	secret := strings.Repeat("3c", 32)
	rec := &recorder{}
	base := serveHTTP(t, newGateway(t, map[string]string{"CLIENT_ADDR_SECRET": secret}, serveFakes(t, rec), nil))
	spoof := []string{"X-Sergas-Client-Ip-Proof", "1.forged", "Grpc-Metadata-X-Sergas-Client-Ip-Proof", "1.forged"}
	if code, _, body := send(t, "GET", base+"/v1/connections", "", spoof...); code != 200 {
		t.Fatalf("REST: %d %s", code, body)
	}
	if code, _, body := send(t, "POST", base+"/webhooks/zoho", "{}", spoof...); code != 202 {
		t.Fatalf("webhook: %d %s", code, body)
	}
	env := config.FromMap(map[string]string{"CLIENT_ADDR_SECRET": secret, "GRPC_TRUSTED_PROXIES": "10.0.0.0/8"})
	trusted := clientaddr.LoadProxies(env, false)
	calls := rec.all()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	for _, c := range calls {
		if p := c.md.Get(clientaddr.ProofKey); len(p) != 1 || strings.Contains(p[0], "forged") {
			t.Fatalf("%s: proofs %q", c.method, p)
		}
		// As the service sees it from a gateway at 10.0.0.5: the report is believed.
		in := metadata.NewIncomingContext(peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 1}}), c.md)
		if got := clientaddr.FromGRPC(in, trusted); got != "127.0.0.1" {
			t.Errorf("%s: the service believes %q, want the client's 127.0.0.1", c.method, got)
		}
	}
}

// In production without CLIENT_ADDR_SECRET the gateway says at start that services elsewhere will not
// believe its reports; with the secret, or in development, it does not.
func TestGatewayWarnsWithoutClientAddrSecret(t *testing.T) {
	addr := closedAddr(t)
	for _, c := range []struct {
		name string
		env  map[string]string
		warn bool
	}{
		{"production", map[string]string{}, true},
		{"development", map[string]string{"SERGAS_ENV": "development"}, false},
		{"secret set", map[string]string{"CLIENT_ADDR_SECRET": strings.Repeat("3c", 32)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := &syncBuffer{}
			newGateway(t, c.env, addr, logs)
			if got := strings.Contains(logs.String(), "CLIENT_ADDR_SECRET is not set"); got != c.warn {
				t.Fatalf("warned %v, want %v: %s", got, c.warn, logs.String())
			}
			if strings.Contains(logs.String(), "3c3c") {
				t.Fatal("the secret was logged")
			}
		})
	}
}
