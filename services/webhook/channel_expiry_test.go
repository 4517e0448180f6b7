package webhook

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// Zoho silently sets an expiry beyond its maximum to one hour. A channel whose confirmed expiry is
// nearer than RenewBefore is due at every check; the renewer must not renew it at each of them (one PUT
// a minute per channel), but once half its confirmed lifetime has passed.
func TestShortConfirmedExpiryIsNotRenewedEveryCheck(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		r.zoho.MaxExpiry = 2 * time.Hour // below the 24 h TTL asked: Zoho confirms one hour
		c := r.create(t, "Deals.all")
		if got := c.GetExpireTime().AsTime().Sub(r.clock.now()); got > time.Hour {
			t.Fatalf("confirmed expiry %v ahead, want at most 1h", got)
		}
		before := r.zoho.Requests()["PUT"]
		for range 10 {
			r.clock.advance(time.Minute)
			if err := r.srv.chans.renewDue(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if n := r.zoho.Requests()["PUT"] - before; n != 0 {
			t.Fatalf("%d renewals in the first 10 minutes of a one-hour channel", n)
		}
		r.clock.advance(25 * time.Minute)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := r.zoho.Requests()["PUT"] - before; n != 1 {
			t.Fatalf("%d renewals past half the channel's lifetime, want 1", n)
		}
		if got := r.get(t, c.GetChannelId()); !got.GetExpireTime().AsTime().After(c.GetExpireTime().AsTime()) {
			t.Fatalf("not extended: %v", got)
		}
	})
}

// A renewal that cannot even start (the service restarted without TOKEN_CLIENT_API_KEY) is a failed
// renewal like any other: recorded on the channel and counted, so that health and metrics show the
// channels lapsing. It was returned unrecorded, and the stored state stayed ACTIVE past the expiry.
func TestRenewalWithoutTokenServiceIsRecorded(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all")
		r.srv.chans.tokens = nil
		r.clock.advance(13 * time.Hour)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		sc, err := r.srv.chans.store.ChannelGet(t.Context(), c.GetChannelId())
		if err != nil {
			t.Fatal(err)
		}
		if sc.State != store.ChannelFailing || sc.FailedRenewals != 1 || !strings.Contains(sc.LastError, "TOKEN_CLIENT_API_KEY") {
			t.Fatalf("after a renewal without the token service: state %v, %d failures, last error %q", sc.State, sc.FailedRenewals, sc.LastError)
		}
		r.clock.advance(12 * time.Hour)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		if sc, _ = r.srv.chans.store.ChannelGet(t.Context(), c.GetChannelId()); sc.State != store.ChannelExpired {
			t.Fatalf("stored state %v past the expiry, want expired", sc.State)
		}
	})
}

// The channel gauges are what the renewing replica counted: once its renewer stops (leadership lost)
// they are withdrawn, or a former leader would report forever the failing channel the new one fixed.
func TestRenewerWithdrawsItsGaugesWhenItStops(t *testing.T) {
	r := newChannelRig(t, db.SQLite)
	r.create(t, "Deals.all")
	r.zoho.FailNext(1, http.StatusInternalServerError)
	r.clock.advance(13 * time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.srv.chans.runRenewer(ctx) }()
	testutil.Eventually(t, 10*time.Second, "the renewer counts the failing channel", func() bool {
		return promtest.ToFloat64(channelsGauge.WithLabelValues("failing")) == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := promtest.CollectAndCount(channelsGauge) + promtest.CollectAndCount(nextExpiryGauge); n != 0 {
		t.Fatalf("%d channel gauge series left by a stopped renewer", n)
	}
}

// ListChannels filters by the state GetChannel shows: a channel whose expiry passed before the renewer
// recorded it (the renewer not running: exactly when the list is needed) is listed as EXPIRED, not as
// ACTIVE.
func TestListChannelsByStateAsShown(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all")
		r.clock.advance(25 * time.Hour)
		for state, want := range map[webhookv1.ChannelState]int{
			webhookv1.ChannelState_CHANNEL_STATE_EXPIRED: 1, webhookv1.ChannelState_CHANNEL_STATE_ACTIVE: 0,
		} {
			resp, err := r.client.ListChannels(t.Context(), &webhookv1.ListChannelsRequest{State: state})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resp.GetChannels()); got != want {
				t.Errorf("state %v: %d channels, want %d", state, got, want)
			}
			for _, ch := range resp.GetChannels() {
				if ch.GetChannelId() != c.GetChannelId() || ch.GetState() != state {
					t.Errorf("state %v lists %v", state, ch)
				}
			}
		}
	})
}
