package webhook

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/ratelimit"
)

// One address flooding a source is refused on its own budget, and the source's real sender, from
// another address, still gets its deliveries stored.
func TestFloodingAddressDoesNotLockOutTheSource(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{
			"WEBHOOK_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_RATE_LIMIT_BURST": "5",
			"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_ADDRESS_RATE_LIMIT_BURST": "2",
		})
		attacker, zoho := from(t, "203.0.113.66"), from(t, "198.51.100.10")
		var accepted, refused int
		for i := range 20 {
			_, err := h.client.Ingest(attacker, delivery(fmt.Sprintf(`{"flood":%d}`, i)))
			switch {
			case err == nil:
				accepted++
			case status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "sender address"):
				if wait, ok := ratelimit.RetryAfter(err); !ok || wait <= 0 {
					t.Fatalf("429 without RetryInfo: %v", err)
				}
				refused++
			default:
				t.Fatalf("flood %d: %v", i, err)
			}
		}
		if accepted != 2 || refused != 18 {
			t.Fatalf("flooding address: %d accepted, %d refused; want its burst of 2, then refusals", accepted, refused)
		}
		for i := range 2 {
			if _, err := h.client.Ingest(zoho, delivery(fmt.Sprintf(`{"real":%d}`, i))); err != nil {
				t.Fatalf("the source's real delivery %d after the flood: %v", i, err)
			}
		}
	})
}

// Deliveries refused before they would be stored (unknown source, malformed headers) do not spend the
// source's budget; only deliveries about to be stored do.
func TestRefusedDeliveriesDoNotSpendTheSourceBudget(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h := startService(t, d, map[string]string{
			"WEBHOOK_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_RATE_LIMIT_BURST": "2",
			"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0",
		})
		ctx := from(t, "203.0.113.66")
		for i := range 10 {
			bad := delivery(fmt.Sprintf(`{"bad":%d}`, i), "Authorization ", "Bearer x")
			if _, err := h.client.Ingest(ctx, bad); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("malformed delivery %d: %v", i, err)
			}
		}
		for i := range 2 {
			if _, err := h.client.Ingest(from(t, "198.51.100.10"), delivery(fmt.Sprintf(`{"real":%d}`, i))); err != nil {
				t.Fatalf("real delivery %d after malformed ones: %v", i, err)
			}
		}
		// The budget is really 2: the next one is refused by the source's limit.
		_, err := h.client.Ingest(from(t, "198.51.100.10"), delivery(`{"real":3}`))
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "source") {
			t.Fatalf("third delivery within a burst of 2: %v", err)
		}
	})
}

// Addresses are believed only from trusted proxies, and an IPv6 sender's /64 is one sender.
func TestSenderBuckets(t *testing.T) {
	h := startService(t, db.SQLite, map[string]string{
		"WEBHOOK_RATE_LIMIT_PER_SECOND": "0", "WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_ADDRESS_RATE_LIMIT_BURST": "1",
	})
	n := 0
	ingest := func(addr string) error {
		n++
		_, err := h.client.Ingest(from(t, addr), delivery(fmt.Sprint(n)))
		return err
	}
	if err := ingest("2001:db8:1:2::1"); err != nil {
		t.Fatal(err)
	}
	if err := ingest("2001:db8:1:2:ffff::9"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("same /64: %v", err)
	}
	if err := ingest("2001:db8:1:3::1"); err != nil {
		t.Fatalf("another /64: %v", err)
	}

	untrusting := startService(t, db.SQLite, map[string]string{
		"GRPC_TRUSTED_PROXIES": "10.0.0.0/8", "WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_ADDRESS_RATE_LIMIT_BURST": "1",
	})
	resp, err := untrusting.client.Ingest(from(t, "198.51.100.1"), delivery("a"))
	if err != nil {
		t.Fatal(err)
	}
	// A caller that is not a trusted proxy cannot choose another address to get a fresh budget.
	if _, err := untrusting.client.Ingest(from(t, "198.51.100.2"), delivery("b")); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("untrusted peer chose its address: %v", err)
	}
	got, err := untrusting.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: resp.GetEventId()})
	if err != nil || got.GetEvent().GetSenderAddress() != "127.0.0.1" {
		t.Fatalf("sender address from an untrusted peer: %q %v", got.GetEvent().GetSenderAddress(), err)
	}
}
