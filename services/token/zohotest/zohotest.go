// Package zohotest is a stand-in for Zoho's accounts server (an httptest server on loopback) that behaves
// as Zoho documents: one-hour access tokens, a budget of access tokens per refresh token per window,
// errors answered with HTTP 200 and an "error" field, optional refresh-token rotation, and failures on
// demand. It counts every request.
package zohotest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Failure is a canned way to fail the next token request.
type Failure int

// Ways to fail.
const (
	ServerError  Failure = iota + 1 // HTTP 500
	InvalidCode                     // HTTP 200 {"error":"invalid_code"}: the refresh token is dead
	AccessDenied                    // HTTP 200 {"error":"Access Denied", …too many requests…}
	Garbage                         // HTTP 200 with a body that is not a token
	custom                          // the Response queued with RespondNext
)

// Response is a canned answer for RespondNext.
type Response struct {
	Status int
	Header map[string]string
	Body   string
}

// queued is one planned failure.
type queued struct {
	f    Failure
	resp Response
}

// Server is the stand-in.
type Server struct {
	*httptest.Server
	ClientID, ClientSecret string

	mu        sync.Mutex
	refreshes int
	exchanges int
	revokes   int
	// refresh tokens that work, and when each minted access tokens (for the budget)
	live    map[string]bool
	minted  map[string][]time.Time
	codes   map[string]bool
	fail    []queued
	arrived chan struct{}
	times   []time.Time          // when each refresh request arrived
	access  map[string]time.Time // issued access tokens and their expiry
	TTL     time.Duration
	Rotate  bool
	Limit   int
	Window  time.Duration
	Delay   time.Duration
	Domain  string
	revoked []string
}

// New starts a stand-in, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{ClientID: "client-" + rnd(), ClientSecret: "secret-" + rnd(), live: map[string]bool{},
		minted: map[string][]time.Time{}, codes: map[string]bool{}, access: map[string]time.Time{},
		TTL: time.Hour, Limit: 10, Window: 10 * time.Minute, Domain: "https://www.zohoapis.eu", arrived: make(chan struct{}, 1000)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/v2/token", s.token)
	mux.HandleFunc("POST /oauth/v2/token/revoke", s.revoke)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func rnd() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// IssueRefreshToken returns a refresh token the stand-in accepts.
func (s *Server) IssueRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := "1000.rt." + rnd()
	s.live[rt] = true
	return rt
}

// IssueCode returns an authorization code for ExchangeCode.
func (s *Server) IssueCode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := "1000.code." + rnd()
	s.codes[c] = true
	return c
}

// FailNext makes the next requests (token or revoke) fail, in order.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range f {
		s.fail = append(s.fail, queued{f: x})
	}
}

// RespondNext makes the next request (token or revoke) get r, after the failures already queued.
func (s *Server) RespondNext(r Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, queued{f: custom, resp: r})
}

// Arrived receives once per refresh request, as soon as it arrives (before Delay): a test can wait for
// a refresh to be in progress instead of sleeping.
func (s *Server) Arrived() <-chan struct{} { return s.arrived }

// RefreshTimes returns when each refresh request arrived.
func (s *Server) RefreshTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times...)
}

// failNext writes the next queued failure, if any, and reports whether it did. Call with mu held.
func (s *Server) failNext(w http.ResponseWriter) bool {
	if len(s.fail) == 0 {
		return false
	}
	q := s.fail[0]
	s.fail = s.fail[1:]
	switch q.f {
	case ServerError:
		http.Error(w, "internal error", http.StatusInternalServerError)
	case InvalidCode:
		writeJSON(w, map[string]any{"error": "invalid_code"})
	case AccessDenied:
		writeJSON(w, map[string]any{"error": "Access Denied", "error_description": "You have made too many requests continuously. Please try again after some time.", "status": "failure"})
	case Garbage:
		_, _ = w.Write([]byte("<html>maintenance</html>"))
	case custom:
		for k, v := range q.resp.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(q.resp.Status)
		_, _ = w.Write([]byte(q.resp.Body))
	}
	return true
}

// Refreshes counts refresh requests received (successful or not).
func (s *Server) Refreshes() int { s.mu.Lock(); defer s.mu.Unlock(); return s.refreshes }

// Revoked lists revoked tokens.
func (s *Server) Revoked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.revoked...)
}

// Valid reports whether an access token was issued here and has not expired.
func (s *Server) Valid(access string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.access[access]
	return ok && time.Now().Before(exp)
}

// TokenURL and AccountsURL are what to configure.
func (s *Server) AccountsURL() string { return s.URL }

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	grant := r.Form.Get("grant_type")
	// Counted on arrival, so that a test sees a refresh in progress while Delay holds it.
	s.mu.Lock()
	switch grant {
	case "refresh_token":
		s.refreshes++
		s.times = append(s.times, time.Now())
		select {
		case s.arrived <- struct{}{}:
		default:
		}
	case "authorization_code":
		s.exchanges++
	}
	s.mu.Unlock()
	if s.Delay > 0 {
		time.Sleep(s.Delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext(w) {
		return
	}
	if r.Form.Get("client_id") != s.ClientID || r.Form.Get("client_secret") != s.ClientSecret {
		writeJSON(w, map[string]any{"error": "invalid_client"})
		return
	}
	now := time.Now()
	resp := map[string]any{"api_domain": s.Domain, "token_type": "Bearer", "expires_in": int(s.TTL.Seconds())}
	switch grant {
	case "refresh_token":
		rt := r.Form.Get("refresh_token")
		if !s.live[rt] {
			writeJSON(w, map[string]any{"error": "invalid_code"})
			return
		}
		var recent []time.Time
		for _, t := range s.minted[rt] {
			if now.Sub(t) < s.Window {
				recent = append(recent, t)
			}
		}
		if len(recent) >= s.Limit {
			writeJSON(w, map[string]any{"error": "Access Denied", "error_description": "You have made too many requests continuously. Please try again after some time."})
			return
		}
		s.minted[rt] = append(recent, now)
		if s.Rotate {
			delete(s.live, rt)
			next := "1000.rt." + rnd()
			s.live[next] = true
			resp["refresh_token"] = next
		}
	case "authorization_code":
		code := r.Form.Get("code")
		if !s.codes[code] {
			writeJSON(w, map[string]any{"error": "invalid_code"})
			return
		}
		delete(s.codes, code)
		rt := "1000.rt." + rnd()
		s.live[rt] = true
		resp["refresh_token"] = rt
	default:
		writeJSON(w, map[string]any{"error": "unsupported_grant_type"})
		return
	}
	at := "1000.at." + rnd()
	s.access[at] = now.Add(s.TTL)
	resp["access_token"] = at
	writeJSON(w, resp)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokes++
	if s.failNext(w) {
		return
	}
	tok := r.Form.Get("token")
	if !s.live[tok] {
		writeJSON(w, map[string]any{"error": "invalid_code"})
		return
	}
	delete(s.live, tok)
	s.revoked = append(s.revoked, tok)
	writeJSON(w, map[string]any{"status": "success"})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}
