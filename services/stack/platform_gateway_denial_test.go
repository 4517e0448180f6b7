package stack_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/testutil"
)

// Item 10 of issue 7: a refusal made through the gateway records the HTTP client's address (reported by
// the gateway, a trusted proxy), not the gateway's own 127.0.0.1, and names the expired or revoked key.
func TestGatewayDenialsRecordClientAddressAndKey(t *testing.T) {
	admin := authtest.NewKey(t, "admin", auth.AllScopes...)
	expired := authtest.NewKey(t, "expired", auth.AllScopes...).Expired()
	revoked := authtest.NewKey(t, "revoked", auth.AllScopes...).Revoked()
	r := start(t, map[string]string{"AUTH_API_KEYS": authtest.JSON(admin, expired, revoked), "TEST_ADMIN_KEY": admin.Key,
		"AUDIT_CLIENT_API_KEY": admin.Key})
	// The HTTP client connects from 127.0.0.2; the gateway reaches the services from 127.0.0.1.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}}
	for _, k := range []authtest.Key{expired, revoked} {
		req, _ := http.NewRequest("GET", r.base+"/v1/connections", nil)
		req.Header.Set("Authorization", "Bearer "+k.Key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("precondition: a refused key answered %d", resp.StatusCode)
		}
	}
	var found map[string]string
	testutil.Eventually(t, 10*time.Second, "denials of both keys recorded by id", func() bool {
		found = map[string]string{}
		for _, actor := range []string{"apikey:expired", "apikey:revoked"} {
			list, err := r.audit.ListEvents(t.Context(), &auditv1.ListEventsRequest{Action: "auth.denied", Actor: actor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range list.GetEvents() {
				found[actor] = e.GetMetadata().GetFields()["peer"].GetStringValue()
			}
		}
		return len(found) == 2
	})
	for actor, peer := range found {
		if peer != "127.0.0.2" {
			t.Errorf("%s refused through the gateway recorded from %q, want the client's 127.0.0.2", actor, peer)
		}
	}
}
