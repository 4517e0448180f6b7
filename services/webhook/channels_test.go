package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/zohocrm/zohotest"
)

// connectionTokens stands in for the token service's GetAccessToken: one zoho connection, "crm-1", whose
// token the Zoho stand-in accepts. (The stack tests use the real token service.)
type connectionTokens struct {
	apiDomain, token string
	mu               sync.Mutex
	err              error
}

func (c *connectionTokens) AccessToken(_ context.Context, provider, id string) (*tokenv1.GetAccessTokenResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if provider != zohoProvider || id != "crm-1" {
		return nil, status.Error(codes.NotFound, "connection not found")
	}
	return &tokenv1.GetAccessTokenResponse{AccessToken: c.token, TokenType: "Bearer", ApiDomain: c.apiDomain}, nil
}

// channelRig is a webhook service with a zoho-crm source "crm", a Zoho stand-in on the same clock, and
// an HTTP door (what the gateway is) that hands Zoho's notifications to Ingest and keeps the answers.
type channelRig struct {
	*harness
	zoho   *zohotest.Server
	tokens *connectionTokens
	mu     sync.Mutex
	codes  []int
	// loseAnswer, set before zohoHook, makes the proxy drop Zoho's answer to the requests it picks.
	loseAnswer func(method string) bool
	// rewriteAnswer, set before zohoHook, rewrites Zoho's answers on their way back.
	rewriteAnswer func([]byte) []byte
}

func newChannelRig(t *testing.T, d db.Dialect) *channelRig {
	t.Helper()
	return newChannelRigEnv(t, d, nil)
}

// newChannelRigEnv is newChannelRig with env entries added or replaced ("" removes one).
func newChannelRigEnv(t *testing.T, d db.Dialect, extra map[string]string) *channelRig {
	t.Helper()
	spec, err := keyring.NewKeySpec("k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	z := zohotest.New(t)
	z.AllowToken("1000.access.crm-1")
	r := &channelRig{zoho: z, tokens: &connectionTokens{apiDomain: z.URL, token: "1000.access.crm-1"}}
	door := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		_, err := r.client.Ingest(req.Context(), &webhookv1.IngestRequest{Source: strings.TrimPrefix(req.URL.Path, "/webhooks/"), Body: body,
			Headers: []*webhookv1.Header{{Name: "Content-Type", Values: []string{req.Header.Get("Content-Type")}}}})
		code := http.StatusAccepted
		if err != nil {
			code = http.StatusUnauthorized
		}
		r.mu.Lock()
		r.codes = append(r.codes, code)
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(door.Close)
	env := map[string]string{
		"WEBHOOK_SOURCES": "crm:zoho-crm,plain:none", "WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0",
		"WEBHOOK_PUBLIC_URL": door.URL, "WEBHOOK_ZOHO_CHANNEL_TTL": "24h", "WEBHOOK_ZOHO_CHANNEL_RENEW_BEFORE": "12h",
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	r.harness = startServiceOn(t, newStore(t, d), env, WithKeyring(ring), withAccessTokens(r.tokens))
	z.SetNow(r.clock.now)
	return r
}

func (r *channelRig) create(t *testing.T, events ...string) *webhookv1.Channel {
	t.Helper()
	resp, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{Source: "crm", ConnectionId: "crm-1", Events: events})
	if err != nil {
		t.Fatalf("create channel: %v", err)
	}
	return resp.GetChannel()
}

func (r *channelRig) get(t *testing.T, id string) *webhookv1.Channel {
	t.Helper()
	resp, err := r.client.GetChannel(t.Context(), &webhookv1.GetChannelRequest{ChannelId: id})
	if err != nil {
		t.Fatalf("get channel: %v", err)
	}
	return resp.GetChannel()
}

// notify has the stand-in send a Deals insert and returns how many channels it reached.
func (r *channelRig) notify(t *testing.T) int {
	t.Helper()
	n, err := r.zoho.Notify(t.Context(), "Deals", "insert", []string{"4150868000001"}, nil)
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
	return n
}

func (r *channelRig) stored(t *testing.T) int {
	t.Helper()
	resp, err := r.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{Source: "crm", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetEvents())
}

// A channel is enabled at Zoho with a token the service generated (sealed at rest, never returned);
// Zoho's notifications on it are stored; the renewer extends it before it expires; one that lapsed at
// Zoho is enabled again by the next renewal; a disabled one is gone at Zoho and its token refused.
func TestChannelLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all", "Contacts.create")
		if c.GetState() != webhookv1.ChannelState_CHANNEL_STATE_ACTIVE || c.GetSource() != "crm" || len(c.GetChannelId()) != 18 ||
			!strings.HasSuffix(c.GetNotifyUrl(), "/webhooks/crm") || c.GetRenewTime() == nil {
			t.Fatalf("created %v", c)
		}
		w, ok := r.zoho.Channel(c.GetChannelId())
		if !ok || len(w.Token) < 40 || len(w.Token) > 50 || !r.zoho.Live(c.GetChannelId()) {
			t.Fatalf("zoho has %+v (%v)", w, ok)
		}
		if !c.GetExpireTime().AsTime().Equal(r.clock.now().Add(24*time.Hour)) && !c.GetExpireTime().AsTime().Equal(w.Expiry) {
			t.Fatalf("expire %v, zoho %v", c.GetExpireTime().AsTime(), w.Expiry)
		}
		// The token is sealed at rest: the stored bytes are not it and open only under the channel's id.
		sc, err := r.srv.chans.store.ChannelGet(t.Context(), c.GetChannelId())
		if err != nil || strings.Contains(string(sc.SealedToken), w.Token) {
			t.Fatalf("stored token in the clear (%v)", err)
		}
		if r.notify(t) != 1 || r.stored(t) != 1 {
			t.Fatal("a notification on the new channel was not stored")
		}

		// Within RenewBefore of its expiry the renewer extends it at Zoho.
		r.clock.advance(13 * time.Hour)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := r.get(t, c.GetChannelId())
		if w2, _ := r.zoho.Channel(c.GetChannelId()); !w2.Expiry.After(w.Expiry) || !got.GetExpireTime().AsTime().After(c.GetExpireTime().AsTime()) {
			t.Fatalf("not renewed: zoho %v, ours %v", w2.Expiry, got.GetExpireTime().AsTime())
		}
		if got.GetRenewTime().AsTime() != r.clock.now() || got.GetFailedRenewals() != 0 {
			t.Fatalf("renewal not recorded: %v", got)
		}

		// Past its expiry Zoho has forgotten it and sends nothing; a renewal enables it again.
		r.clock.advance(25 * time.Hour)
		if r.notify(t) != 0 {
			t.Fatal("the stand-in notified an expired channel")
		}
		if st := r.get(t, c.GetChannelId()).GetState(); st != webhookv1.ChannelState_CHANNEL_STATE_EXPIRED {
			t.Fatalf("state %v after expiry, want EXPIRED", st)
		}
		if _, err := r.client.RenewChannel(t.Context(), &webhookv1.RenewChannelRequest{ChannelId: c.GetChannelId()}); err != nil {
			t.Fatal(err)
		}
		if r.notify(t) != 1 || r.stored(t) != 2 {
			t.Fatal("a renewed channel's notification was not stored")
		}

		// Disabled: gone at Zoho, and a notification carrying its token is refused.
		dis, err := r.client.DisableChannel(t.Context(), &webhookv1.DisableChannelRequest{ChannelId: c.GetChannelId()})
		if err != nil || dis.GetChannel().GetState() != webhookv1.ChannelState_CHANNEL_STATE_DISABLED || r.zoho.Live(c.GetChannelId()) {
			t.Fatalf("disable: %v %v", dis, err)
		}
		body := `{"server_time":1,"module":"Deals","operation":"insert","ids":["1"],"channel_id":"` + c.GetChannelId() + `","token":"` + w.Token + `"}`
		if _, err := r.client.Ingest(t.Context(), &webhookv1.IngestRequest{Source: "crm", Body: []byte(body)}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("notification of a disabled channel: %v, want Unauthenticated", err)
		}
		if _, err := r.client.RenewChannel(t.Context(), &webhookv1.RenewChannelRequest{ChannelId: c.GetChannelId()}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("renew a disabled channel: %v", err)
		}
		if err := r.srv.chans.renewDue(t.Context()); err != nil || r.zoho.Live(c.GetChannelId()) {
			t.Fatalf("the renewer brought a disabled channel back (%v)", err)
		}
	})
}

// A notification with the right channel but a wrong token, or for a channel of another source, is
// refused.
func TestStoredChannelTokenChecked(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all")
		for name, req := range map[string]*webhookv1.IngestRequest{
			"wrong token": {Source: "crm", Body: []byte(`{"channel_id":"` + c.GetChannelId() + `","token":"not-it"}`)},
			"no token":    {Source: "crm", Body: []byte(`{"channel_id":"` + c.GetChannelId() + `"}`)},
		} {
			if _, err := r.client.Ingest(t.Context(), req); status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s: %v, want Unauthenticated", name, err)
			}
		}
		if r.stored(t) != 0 {
			t.Fatal("a refused notification was stored")
		}
	})
}

// A renewal that fails is recorded on the channel (failing, with the reason and a count) and retried
// after a backoff; once its expiry passes the channel shows as expired; the next success clears it all.
func TestChannelRenewalFailures(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all")
		r.clock.advance(13 * time.Hour)
		r.zoho.FailNext(1, http.StatusInternalServerError)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := r.get(t, c.GetChannelId())
		if got.GetState() != webhookv1.ChannelState_CHANNEL_STATE_FAILING || got.GetFailedRenewals() != 1 || got.GetLastError() == "" {
			t.Fatalf("after a failed renewal: %v", got)
		}
		if strings.Contains(got.GetLastError(), "1000.access") {
			t.Fatalf("last_error shows the access token: %q", got.GetLastError())
		}
		// Within the backoff nothing is tried; past the expiry the channel is marked expired.
		before := r.zoho.Requests()["PUT"]
		r.clock.advance(30 * time.Second)
		if err := r.srv.chans.renewDue(t.Context()); err != nil || r.zoho.Requests()["PUT"] != before {
			t.Fatalf("retried within the backoff (%v)", err)
		}
		r.clock.advance(12 * time.Hour)
		r.zoho.FailNext(1, http.StatusTooManyRequests)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		sc, _ := r.srv.chans.store.ChannelGet(t.Context(), c.GetChannelId())
		if sc.State != store.ChannelExpired || sc.FailedRenewals != 2 {
			t.Fatalf("stored state %v after %d failures past expiry, want expired", sc.State, sc.FailedRenewals)
		}
		r.clock.advance(3 * time.Minute)
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		got = r.get(t, c.GetChannelId())
		if got.GetState() != webhookv1.ChannelState_CHANNEL_STATE_ACTIVE || got.GetFailedRenewals() != 0 || got.GetLastError() != "" || !r.zoho.Live(c.GetChannelId()) {
			t.Fatalf("after recovery: %v", got)
		}
	})
}

// Bad requests are refused before anything reaches Zoho or the store; Zoho's or the token service's
// refusal leaves no channel behind.
func TestCreateChannelRefusals(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		ok := func() *webhookv1.CreateChannelRequest {
			return &webhookv1.CreateChannelRequest{Source: "crm", ConnectionId: "crm-1", Events: []string{"Deals.all"}}
		}
		for name, tc := range map[string]struct {
			mod  func(*webhookv1.CreateChannelRequest)
			code codes.Code
		}{
			"letters in id":     {func(q *webhookv1.CreateChannelRequest) { q.ChannelId = "12a" }, codes.InvalidArgument},
			"19-digit id":       {func(q *webhookv1.CreateChannelRequest) { q.ChannelId = strings.Repeat("9", 19) }, codes.InvalidArgument},
			"no events":         {func(q *webhookv1.CreateChannelRequest) { q.Events = nil }, codes.InvalidArgument},
			"bad event":         {func(q *webhookv1.CreateChannelRequest) { q.Events = []string{"Deals.upsert"} }, codes.InvalidArgument},
			"NUL event":         {func(q *webhookv1.CreateChannelRequest) { q.Events = []string{"Deals\x00.all"} }, codes.InvalidArgument},
			"repeated event":    {func(q *webhookv1.CreateChannelRequest) { q.Events = []string{"Deals.all", "Deals.all"} }, codes.InvalidArgument},
			"51 events":         {func(q *webhookv1.CreateChannelRequest) { q.Events = manyEvents(51) }, codes.InvalidArgument},
			"unverified source": {func(q *webhookv1.CreateChannelRequest) { q.Source = "plain" }, codes.FailedPrecondition},
			"unknown source":    {func(q *webhookv1.CreateChannelRequest) { q.Source = "nope" }, codes.FailedPrecondition},
			"bad source":        {func(q *webhookv1.CreateChannelRequest) { q.Source = "Crm/../x" }, codes.InvalidArgument},
			"no connection":     {func(q *webhookv1.CreateChannelRequest) { q.ConnectionId = "" }, codes.InvalidArgument},
			"ftp notify url":    {func(q *webhookv1.CreateChannelRequest) { q.NotifyUrl = "ftp://x.example/" }, codes.InvalidArgument},
			"huge notify url": {func(q *webhookv1.CreateChannelRequest) {
				q.NotifyUrl = "https://x.example/" + strings.Repeat("a", 3000)
			}, codes.InvalidArgument},
			"unknown conn": {func(q *webhookv1.CreateChannelRequest) { q.ConnectionId = "crm-2" }, codes.FailedPrecondition},
		} {
			q := ok()
			tc.mod(q)
			if _, err := r.client.CreateChannel(t.Context(), q); status.Code(err) != tc.code {
				t.Errorf("%s: %v, want %v", name, err, tc.code)
			}
		}
		// Zoho refuses the access token: no channel is left behind.
		r.zoho.RevokeToken("1000.access.crm-1")
		q := ok()
		q.ChannelId = "4000000000001"
		if _, err := r.client.CreateChannel(t.Context(), q); status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.Unavailable {
			t.Fatalf("zoho refused: %v", err)
		} else if strings.Contains(status.Convert(err).Message(), "1000.access") {
			t.Fatalf("the error shows the access token: %v", err)
		}
		if _, err := r.client.GetChannel(t.Context(), &webhookv1.GetChannelRequest{ChannelId: "4000000000001"}); status.Code(err) != codes.NotFound {
			t.Fatalf("a refused channel was kept: %v", err)
		}
		// The token service down: Unavailable, nothing kept.
		r.tokens.mu.Lock()
		r.tokens.err = status.Error(codes.Unavailable, "down")
		r.tokens.mu.Unlock()
		if _, err := r.client.CreateChannel(t.Context(), q); status.Code(err) != codes.Unavailable {
			t.Fatalf("token service down: %v", err)
		}
		list, err := r.client.ListChannels(t.Context(), &webhookv1.ListChannelsRequest{})
		if err != nil || len(list.GetChannels()) != 0 {
			t.Fatalf("channels after refusals: %v %v", list, err)
		}
	})
}

func manyEvents(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "M" + strings.Repeat("x", i) + ".all"
	}
	return out
}

// ListChannels pages by id and filters by source and state; an id taken is ALREADY_EXISTS.
func TestListChannels(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		var ids []string
		for i := range 5 {
			resp, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{ChannelId: "10" + string(rune('0'+i)),
				Source: "crm", ConnectionId: "crm-1", Events: []string{"Deals.all"}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, resp.GetChannel().GetChannelId())
		}
		if _, err := r.client.CreateChannel(t.Context(), &webhookv1.CreateChannelRequest{ChannelId: "100",
			Source: "crm", ConnectionId: "crm-1", Events: []string{"Deals.all"}}); status.Code(err) != codes.AlreadyExists {
			t.Fatalf("taken id: %v", err)
		}
		if _, err := r.client.DisableChannel(t.Context(), &webhookv1.DisableChannelRequest{ChannelId: "102"}); err != nil {
			t.Fatal(err)
		}
		var got []string
		token := ""
		for range 10 {
			resp, err := r.client.ListChannels(t.Context(), &webhookv1.ListChannelsRequest{PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range resp.GetChannels() {
				got = append(got, c.GetChannelId())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Fatalf("paged %v, want %v", got, ids)
		}
		resp, err := r.client.ListChannels(t.Context(), &webhookv1.ListChannelsRequest{State: webhookv1.ChannelState_CHANNEL_STATE_DISABLED, Source: "crm"})
		if err != nil || len(resp.GetChannels()) != 1 || resp.GetChannels()[0].GetChannelId() != "102" {
			t.Fatalf("disabled: %v %v", resp, err)
		}
		for name, q := range map[string]*webhookv1.ListChannelsRequest{
			"bad token": {PageToken: "garbage"}, "bad state": {State: 99}, "bad source": {Source: "A"}, "huge page": {PageSize: 5000},
		} {
			if _, err := r.client.ListChannels(t.Context(), q); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := r.client.GetChannel(t.Context(), &webhookv1.GetChannelRequest{ChannelId: "x"}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad id: %v", err)
		}
		if _, err := r.client.GetChannel(t.Context(), &webhookv1.GetChannelRequest{ChannelId: "999"}); status.Code(err) != codes.NotFound {
			t.Errorf("unknown id: %v", err)
		}
	})
}

// Channels waiting out a retry delay never hide the channels behind them: with more of them than the
// renewer reads at once, a healthy channel due later is still renewed in the same pass.
func TestRenewerPagesPastWaitingChannels(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all")
		r.clock.advance(13 * time.Hour)
		now := r.clock.now()
		for i := range renewPage + 20 {
			w := &store.Channel{ID: "7" + strings.Repeat("0", 6) + string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10)),
				Source: "crm", ConnectionID: "crm-1", Events: []string{"Deals.all"}, NotifyURL: "https://x.example/",
				SealedToken: []byte{1}, State: store.ChannelExpired, ExpireTime: now.Add(-time.Hour), CreateTime: now, UpdateTime: now,
				FailedRenewals: 1}
			if err := r.srv.chans.store.ChannelCreate(t.Context(), w); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.srv.chans.renewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := r.get(t, c.GetChannelId()); got.GetRenewTime().AsTime() != now {
			t.Fatalf("the healthy channel was not renewed behind %d waiting ones: %v", renewPage+20, got)
		}
	})
}

// A managed channel's notification whose token the keys in force cannot open (the key that sealed it
// was removed) is refused as unavailable, so that Zoho retries, and counted as channel_keys: never as a
// forgery, and never stored.
func TestChannelTokenUnopenableIsUnavailable(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newChannelRig(t, d)
		c := r.create(t, "Deals.all")
		w, _ := r.zoho.Channel(c.GetChannelId())
		spec, _ := keyring.NewKeySpec("k2")
		other, _ := keyring.Parse(spec)
		r.srv.chans.ring = other
		before := promtest.ToFloat64(refusedTotal.WithLabelValues("crm", reasonChannelKeys))
		body := `{"server_time":1,"module":"Deals","operation":"insert","ids":["1"],"channel_id":"` + c.GetChannelId() + `","token":"` + w.Token + `"}`
		if _, err := r.client.Ingest(t.Context(), &webhookv1.IngestRequest{Source: "crm", Body: []byte(body)}); status.Code(err) != codes.Unavailable {
			t.Fatalf("unopenable token: %v, want Unavailable", err)
		}
		if promtest.ToFloat64(refusedTotal.WithLabelValues("crm", reasonChannelKeys)) < before+1 || r.stored(t) != 0 {
			t.Fatal("not counted as channel_keys, or stored")
		}
	})
}
