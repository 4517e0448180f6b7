package webhook

import (
	"context"
	"testing"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
)

// A peer on a trusted network (here loopback, as a mesh sidecar or any pod would be) cannot choose the
// sender address without the gateway's proof; with it, the reported address is stored.
func TestUnprovenSenderAddressIsIgnored(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{})
		for _, c := range []struct {
			ctx  context.Context
			want string
		}{{fromUnproven(t, "203.0.113.66"), "127.0.0.1"}, {from(t, "198.51.100.7"), "198.51.100.7"}} {
			resp, err := h.client.Ingest(c.ctx, delivery(c.want))
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: resp.GetEventId()})
			if err != nil {
				t.Fatal(err)
			}
			if a := got.GetEvent().GetSenderAddress(); a != c.want {
				t.Errorf("sender address %q, want %q", a, c.want)
			}
		}
	})
}

// Ingest records the address the guard found (auth.ClientAddr), the one denials and the guard's limits
// use, rather than working it out again.
func TestIngestUsesTheGuardsAddress(t *testing.T) {
	env := config.FromMap(map[string]string{"WEBHOOK_SOURCES": "zoho:none"})
	srv := NewServer(newStore(t, db.SQLite), LoadConfig(env))
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	ctx := auth.WithClientAddr(t.Context(), "192.0.2.44")
	resp, err := srv.Ingest(ctx, &webhookv1.IngestRequest{Source: "zoho", Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := srv.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: resp.GetEventId()})
	if err != nil {
		t.Fatal(err)
	}
	if a := got.GetEvent().GetSenderAddress(); a != "192.0.2.44" {
		t.Fatalf("sender address %q, want the guard's 192.0.2.44", a)
	}
}
