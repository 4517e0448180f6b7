package webhook

import (
	"os"
	"path/filepath"
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

// A channel id configured by hand (zoho_crm.channels) in any zoho-crm source cannot be taken by a
// managed channel: enabling it again at Zoho would replace the hand-made channel's token there, while
// the verifier still checks notifications against the configured one, so every notification would be
// refused.
func TestCreateChannelRefusesAConfiguredID(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		path := filepath.Join(t.TempDir(), "sources.json")
		if err := os.WriteFile(path, []byte(`{"sources": [{"name": "crm", "scheme": "zoho-crm"},
  {"name": "byhand", "scheme": "zoho-crm", "zoho_crm": {"channels": {"1000000068001": "tok-1"}}}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r := newChannelRigEnv(t, d, map[string]string{"WEBHOOK_SOURCES": "", "WEBHOOK_SOURCES_FILE": path})
		for _, src := range []string{"crm", "byhand"} {
			_, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{ChannelId: "1000000068001", Source: src,
				ConnectionId: "crm-1", Events: []string{"Deals.all"}})
			if status.Code(err) != codes.AlreadyExists {
				t.Errorf("source %s: %v, want AlreadyExists", src, err)
			}
		}
		if n := r.zoho.Requests()["POST"]; n != 0 {
			t.Fatalf("%d enables reached Zoho", n)
		}
	})
}
