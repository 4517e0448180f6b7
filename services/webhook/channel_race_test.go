package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/zohocrm"
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
		if r.loseAnswer != nil && r.loseAnswer(req.Method) {
			// Zoho acts on the request, but its answer never arrives.
			proxy.ServeHTTP(httptest.NewRecorder(), req)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if r.rewriteAnswer != nil {
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, req)
			w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(r.rewriteAnswer(rec.Body.Bytes()))
			return
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

// A process that dies after storing a channel and before Zoho enabled it leaves a stored channel that
// Zoho does not have: the renewer must enable it within minutes, not once it comes due a whole
// TTL-RenewBefore later (12 hours by default, all of them without a notification).
func TestCrashDuringCreateIsEnabledSoon(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		const id = "5000000000002"
		var left *store.Channel // the row as a crash before Zoho's answer leaves it
		r.zohoHook(t, func(method, got string) {
			if method == http.MethodPost && got == id && left == nil {
				c, err := r.srv.chans.store.ChannelGet(context.Background(), id)
				if err != nil {
					t.Errorf("read during create: %v", err)
					return
				}
				left = c
			}
		})
		if _, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{ChannelId: id, Source: "crm",
			ConnectionId: "crm-1", Events: []string{"Deals.all"}}); err != nil {
			t.Fatal(err)
		}
		// Undo what happened after the crash point: Zoho never had it, the row is as stored first.
		zc := &zohocrm.Client{}
		if err := zc.Disable(t.Context(), zohocrm.Auth{APIDomain: r.zoho.URL, AccessToken: "1000.access.crm-1", TokenType: "Bearer"}, id); err != nil {
			t.Fatal(err)
		}
		if err := r.srv.chans.store.ChannelDelete(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if err := r.srv.chans.store.ChannelCreate(t.Context(), left); err != nil {
			t.Fatal(err)
		}
		r.clock.advance(5 * time.Minute)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !r.zoho.Live(id) {
			t.Fatalf("5 minutes after a crash during its creation, the channel (expiring %v) is not enabled at Zoho", left.ExpireTime)
		}
		if r.notify(t) != 1 {
			t.Fatal("its notification was not stored")
		}
	})
}

// An enable whose answer is lost (Zoho acted, then a timeout or a 5xx from a proxy) is an unknown
// outcome: the channel, deleted here, must not stay enabled at Zoho, posting notifications we refuse
// until its expiry.
func TestLostEnableAnswerLeavesNothingAtZoho(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		const id = "5000000000003"
		r.loseAnswer = func(method string) bool { return method == http.MethodPost }
		r.zohoHook(t, func(string, string) {})
		_, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{ChannelId: id, Source: "crm",
			ConnectionId: "crm-1", Events: []string{"Deals.all"}})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("create with Zoho's answer lost: %v, want Unavailable", err)
		}
		if r.zoho.Live(id) {
			t.Fatal("a channel whose creation failed is live at Zoho")
		}
		if _, err := r.client.GetChannel(t.Context(), &webhookv1.GetChannelRequest{ChannelId: id}); status.Code(err) != codes.NotFound {
			t.Fatalf("a failed channel was kept: %v", err)
		}
	})
}

// A disable that could not reach Zoho is retried by calling :disable again: the channel, already
// disabled here, is disabled at Zoho this time (it was answered OK with nothing sent, and the channel
// kept posting refused notifications until its expiry).
func TestDisableAgainReachesZoho(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all")
		r.zoho.FailNext(1, http.StatusServiceUnavailable)
		if _, err := r.client.DisableChannel(t.Context(), &webhookv1.DisableChannelRequest{ChannelId: c.GetChannelId()}); status.Code(err) != codes.Unavailable {
			t.Fatalf("disable with Zoho down: %v, want Unavailable", err)
		}
		if !r.zoho.Live(c.GetChannelId()) {
			t.Fatal("the stand-in did not fail the first disable")
		}
		resp, err := r.client.DisableChannel(t.Context(), &webhookv1.DisableChannelRequest{ChannelId: c.GetChannelId()})
		if err != nil || resp.GetChannel().GetState() != webhookv1.ChannelState_CHANNEL_STATE_DISABLED {
			t.Fatalf("disable again: %v %v", resp, err)
		}
		if r.zoho.Live(c.GetChannelId()) {
			t.Fatal("disabling again did not disable the channel at Zoho")
		}
	})
}

// An expiry Zoho "confirms" beyond the one asked (a misread zone, a misbehaving proxy) is not believed:
// renewing by it would let the channel lapse at Zoho long before the renewer looks at it.
func TestConfirmedExpiryBeyondAskedIsNotBelieved(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		later := regexp.MustCompile(`"channel_expiry":"[^"]*"`)
		r.rewriteAnswer = func(b []byte) []byte {
			return later.ReplaceAll(b, []byte(`"channel_expiry":"2030-01-01T00:00:00+00:00"`))
		}
		r.zohoHook(t, func(string, string) {})
		c := r.create(t, "Deals.all")
		if got, limit := c.GetExpireTime().AsTime(), r.clock.now().Add(24*time.Hour); got.After(limit) {
			t.Fatalf("stored expiry %v, beyond the %v asked", got, limit)
		}
	})
}

// webhook_zoho_channel_renewals_total counts renewals at Zoho: one whose outcome could not be stored
// (the channel changed meanwhile) happened all the same and is counted.
func TestRenewalCountedWhenItsOutcomeIsNotStored(t *testing.T) {
	r := newChannelRig(t, db.SQLite)
	c := r.create(t, "Deals.all")
	r.zohoHook(t, func(method, id string) {
		if method == http.MethodPut && id == c.GetChannelId() {
			// Another replica changes the channel while this renewal waits for Zoho.
			sc, err := r.srv.chans.store.ChannelGet(context.Background(), id)
			if err == nil {
				err = r.srv.chans.store.ChannelUpdate(context.Background(), sc)
			}
			if err != nil {
				t.Errorf("concurrent change: %v", err)
			}
		}
	})
	before := testutil.ToFloat64(renewalsTotal.WithLabelValues("renewed"))
	if _, err := r.client.RenewChannel(t.Context(), &webhookv1.RenewChannelRequest{ChannelId: c.GetChannelId()}); status.Code(err) != codes.Aborted {
		t.Fatalf("renew racing a change: %v, want Aborted", err)
	}
	if got := testutil.ToFloat64(renewalsTotal.WithLabelValues("renewed")) - before; got != 1 {
		t.Fatalf("renewed counted %v times, want 1", got)
	}
}
