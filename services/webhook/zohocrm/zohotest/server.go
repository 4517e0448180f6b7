// Package zohotest is a Zoho CRM stand-in for tests: a real HTTP server (httptest) that serves the
// Notification API (actions/watch) the way Zoho documents it, keeps channels with their expiry on an
// injectable clock, and posts notifications to the channels whose events match, as Zoho does.
//
// What it follows (https://www.zoho.com/crm/developer/docs/api/v7/notifications/enable.html and the
// update-details, disable and get-details pages beside it):
//   - "Authorization: Zoho-oauthtoken <token>", else 401 INVALID_TOKEN / AUTHENTICATION_FAILURE;
//   - channel_id a long (digits), events "{Module}.{all|create|edit|delete}", notify_url mandatory
//     (MANDATORY_NOT_FOUND), token at most 50 characters (INVALID_DATA);
//   - channel_expiry at most one week ahead from v4 (one day for v2, v2.1, v3); beyond it, or absent,
//     Zoho sets its default of one hour, which the stand-in does too (RefuseOverMax refuses instead);
//   - answers {"watch":[{"code":"SUCCESS","details":{"events":[…]},"message":…,"status":"success"}]}.
//
// What integrators report and the stand-in does: a subscription is answered 201, an empty list 204;
// channel_expiry with "Z" instead of a numeric offset is refused with INVALID_DATA.
//
// What Zoho does not document and the stand-in chooses: an expiry in the past is refused with
// INVALID_DATA on channel_expiry; updating or disabling a channel Zoho does not have (never enabled,
// expired, disabled) is an error item INVALID_DATA whose details name channel_id, with HTTP 400.
package zohotest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/services/webhook/zohocrm"
)

// Bounds that keep a test's stand-in small whatever a client sends.
const (
	maxBody        = 1 << 20
	maxItems       = 100
	maxChannels    = 10000
	maxTokens      = 1000
	maxNotifyBytes = 64 << 10
)

// Server is the stand-in. Set its exported fields before the first request; they are not guarded.
type Server struct {
	// URL is the api_domain to give the client: http://127.0.0.1:port.
	URL string
	// MaxExpiry is the longest channel_expiry ahead of now; 0 means Zoho's limit for the version in the
	// path: one week from v4, one day before.
	MaxExpiry time.Duration
	// DefaultExpiry is what Zoho sets when channel_expiry is absent or beyond MaxExpiry: one hour.
	DefaultExpiry time.Duration
	// RefuseOverMax makes an expiry beyond MaxExpiry an INVALID_DATA error instead of Zoho's silent
	// fallback to DefaultExpiry.
	RefuseOverMax bool
	// Now is the stand-in's clock (time.Now when nil); tests move it to make channels expire. It must be
	// safe to call from several goroutines. Set it before anything calls the stand-in, or use SetNow
	// once something may already be calling it.
	Now func() time.Time
	// Zone is the offset Zoho answers times in (the CRM user's zone); +05:30 by default, so that a
	// client that ignores offsets is caught.
	Zone *time.Location
	// NotifyClient posts notifications; a client with a 10 s timeout when nil.
	NotifyClient *http.Client

	ts *httptest.Server

	mu       sync.Mutex
	nowFunc  func() time.Time // set by SetNow; wins over Now
	tokens   map[string]bool
	channels map[string]*channel
	requests map[string]int
	failN    int
	failCode int
}

// channel is what Zoho keeps for one enabled channel.
type channel struct {
	watch zohocrm.Watch
}

// New starts a stand-in on loopback and closes it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts a stand-in on loopback; Close stops it.
func Start() *Server {
	s := &Server{
		DefaultExpiry: time.Hour,
		Zone:          time.FixedZone("IST", 5*3600+1800),
		tokens:        map[string]bool{},
		channels:      map[string]*channel{},
		requests:      map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/crm/{version}/actions/watch", s.serveWatch)
	s.ts = httptest.NewServer(mux)
	s.URL = s.ts.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// AllowToken makes tok an access token the stand-in accepts.
func (s *Server) AllowToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) < maxTokens {
		s.tokens[tok] = true
	}
}

// RevokeToken stops accepting tok (an access token that expired or was revoked).
func (s *Server) RevokeToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, tok)
}

// FailNext makes the next n calls to actions/watch fail with status (500, 503 or 429; 429 carries
// Retry-After: 1), before authentication, as Zoho's front end would.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, status
}

// Requests counts the calls to actions/watch by method (failed ones included).
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// Channel returns the channel as Zoho holds it (Expiry in UTC), whether or not it has expired; false
// when Zoho never had it or it was disabled.
func (s *Server) Channel(id string) (zohocrm.Watch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	if !ok {
		return zohocrm.Watch{}, false
	}
	return copyWatch(c.watch), true
}

// Live reports whether the channel exists and has not expired on the stand-in's clock.
func (s *Server) Live(id string) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	return ok && now.Before(c.watch.Expiry)
}

func copyWatch(w zohocrm.Watch) zohocrm.Watch {
	w.Events = append([]string(nil), w.Events...)
	return w
}

// SetNow replaces the clock, safely while requests are being served (unlike setting Now).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nowFunc = now
}

func (s *Server) now() time.Time {
	s.mu.Lock()
	f := s.nowFunc
	s.mu.Unlock()
	if f == nil {
		f = s.Now
	}
	if f == nil {
		f = time.Now
	}
	return f()
}

// liveChannels returns copies of the channels that have not expired at now, by id.
func (s *Server) liveChannels(now time.Time) []zohocrm.Watch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]zohocrm.Watch, 0, len(s.channels))
	for _, c := range s.channels {
		if now.Before(c.watch.Expiry) {
			out = append(out, copyWatch(c.watch))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChannelID < out[j].ChannelID })
	return out
}

// ctxDone is a tiny helper for bounded loops in Notify.
func ctxDone(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}
