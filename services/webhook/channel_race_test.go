package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
)

// zohoHook puts a proxy before the Zoho stand-in that runs before(method, channel id) ahead of each
// enable or update, so that a test can interleave another request between our store and Zoho.
func (r *channelRig) zohoHook(t *testing.T, before func(method, id string)) {
	t.Helper()
	target, err := url.Parse(r.zoho.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost || req.Method == http.MethodPut {
			body, _ := io.ReadAll(req.Body)
			var in struct {
				Watch []struct {
					ChannelID string `json:"channel_id"`
				} `json:"watch"`
			}
			if json.Unmarshal(body, &in) == nil && len(in.Watch) == 1 {
				before(req.Method, in.Watch[0].ChannelID)
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(ts.Close)
	r.tokens.mu.Lock()
	r.tokens.apiDomain = ts.URL
	r.tokens.mu.Unlock()
}

// A channel disabled (on any replica) while its creation waits for Zoho must not be left enabled at
// Zoho, where it would post, until its expiry, notifications we refuse.
func TestDisableDuringCreateLeavesNothingAtZoho(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		const id = "5000000000001"
		r.zohoHook(t, func(method, got string) {
			if method == http.MethodPost && got == id {
				if _, err := r.client.DisableChannel(t.Context(), &webhookv1.DisableChannelRequest{ChannelId: id}); err != nil {
					t.Errorf("disable during create: %v", err)
				}
			}
		})
		_, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{ChannelId: id, Source: "crm",
			ConnectionId: "crm-1", Events: []string{"Deals.all"}})
		t.Logf("create: %v", err)
		if r.zoho.Live(id) {
			t.Fatal("a channel disabled during its creation is live at Zoho")
		}
		if st := r.get(t, id).GetState(); st != webhookv1.ChannelState_CHANNEL_STATE_DISABLED {
			t.Fatalf("state %v, want DISABLED", st)
		}
	})
}
