package webhook

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
)

// Zoho's channel ids are longs: "007" is channel 7 there, and its notifications would carry 7, a
// channel we do not have, so every one of them would be refused. Such ids, and zero (which Zoho
// refuses), are the caller's mistake: INVALID_ARGUMENT, before anything is stored or sent.
func TestChannelIDMustBeZohosForm(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		for _, id := range []string{"007", "0", "000000000000000000", "01"} {
			_, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{ChannelId: id, Source: "crm",
				ConnectionId: "crm-1", Events: []string{"Deals.all"}})
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("channel id %q: %v, want InvalidArgument", id, err)
			}
		}
		if n := r.zoho.Requests()["POST"]; n != 0 {
			t.Fatalf("%d enables reached Zoho", n)
		}
	})
}

// A notify URL the Zoho client would refuse to send (user information, a fragment) is the caller's
// mistake, INVALID_ARGUMENT, not UNAVAILABLE as if Zoho were down (which invites retries forever).
func TestNotifyURLZohoCannotTakeIsInvalid(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		for _, u := range []string{"https://user:secret@x.example/webhooks/crm", "https://x.example/webhooks/crm#frag"} {
			_, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{Source: "crm", ConnectionId: "crm-1",
				Events: []string{"Deals.all"}, NotifyUrl: u})
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("notify_url %q: %v, want InvalidArgument", u, err)
			}
		}
	})
}
