package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/ratelimit"
)

// Every RPC carries the HTTP client's address in x-sergas-client-ip, and nothing the client sends can
// put another value there.
func TestRPCsCarryTheClientAddress(t *testing.T) {
	spoof := []string{
		"X-Sergas-Client-Ip", "6.6.6.6", "Grpc-Metadata-X-Sergas-Client-Ip", "6.6.6.6",
		"X-Forwarded-For", "6.6.6.6",
	}
	check := func(t *testing.T, rec *recorder, want string) {
		t.Helper()
		calls := rec.all()
		if len(calls) != 2 {
			t.Fatalf("%d calls, want 2", len(calls))
		}
		for _, c := range calls {
			if got := c.md.Get(clientaddr.MetadataKey); !slices.Equal(got, []string{want}) {
				t.Errorf("%s: %s = %q, want [%s]", c.method, clientaddr.MetadataKey, got, want)
			}
		}
	}
	t.Run("no trusted proxy", func(t *testing.T) {
		rec := &recorder{}
		base := serveHTTP(t, newGateway(t, nil, serveFakes(t, rec), nil))
		if code, _, body := send(t, "GET", base+"/v1/connections", "", spoof...); code != 200 {
			t.Fatalf("REST: %d %s", code, body)
		}
		if code, _, body := send(t, "POST", base+"/webhooks/zoho", "{}", spoof...); code != 202 {
			t.Fatalf("webhook: %d %s", code, body)
		}
		check(t, rec, "127.0.0.1")
	})
	t.Run("behind a trusted load balancer", func(t *testing.T) {
		rec := &recorder{}
		env := map[string]string{"GATEWAY_TRUSTED_PROXIES": "127.0.0.1", "GATEWAY_CLIENT_IP_HEADER": "x-real-client"}
		base := serveHTTP(t, newGateway(t, env, serveFakes(t, rec), nil))
		headers := append(slices.Clone(spoof), "X-Real-Client", "198.51.100.7")
		if code, _, body := send(t, "GET", base+"/v1/connections", "", headers...); code != 200 {
			t.Fatalf("REST: %d %s", code, body)
		}
		if code, _, body := send(t, "POST", base+"/webhooks/zoho", "{}", headers...); code != 202 {
			t.Fatalf("webhook: %d %s", code, body)
		}
		check(t, rec, "198.51.100.7")
	})
}

var internalAddr = regexp.MustCompile(`127\.0\.0\.1|dial|tcp|refused|connection error|transport`)

// With a service down, callers (the unauthenticated webhook sender included) get a plain 503 with
// Retry-After; the transport's message, which names internal addresses, goes to the log, sampled.
func TestServiceDownAnswersPlain503(t *testing.T) {
	logs := &syncBuffer{}
	down := closedAddr(t)
	base := serveHTTP(t, newGateway(t, nil, down, logs))
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/connections", ""},
		{"PUT", "/v1/connections/zoho/x", `{"refreshToken":"r"}`},
		{"POST", "/webhooks/zoho", `{"ids":["1"]}`},
	} {
		code, h, body := send(t, c.method, base+c.path, c.body)
		var st struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal([]byte(body), &st)
		if code != 503 || h.Get("Retry-After") == "" || st.Code != int(codes.Unavailable) || st.Message != "service unavailable" {
			t.Errorf("%s %s: %d Retry-After %q %s", c.method, c.path, code, h.Get("Retry-After"), body)
		}
		if internalAddr.MatchString(body) {
			t.Errorf("%s %s leaks the transport error: %s", c.method, c.path, body)
		}
	}
	if !strings.Contains(logs.String(), down) {
		t.Errorf("the log does not say what failed:\n%s", logs.String())
	}

	// A flood writes a bounded number of lines (1 a second, bursts of 5) and says how many it left out.
	start := time.Now()
	for range 200 {
		send(t, "GET", base+"/v1/connections", "")
	}
	lines := strings.Count(logs.String(), "service unreachable")
	if limit := 5 + 3 + int(time.Since(start).Seconds()) + 1; lines > limit {
		t.Errorf("%d log lines for 203 failures in %v (limit %d)", lines, time.Since(start), limit)
	}
}

// An UNAVAILABLE the service itself sends (a database outage, a refresh on another replica) reaches the
// caller as the service wrote it.
func TestServiceUnavailablePassesThrough(t *testing.T) {
	rec := &recorder{answer: func(context.Context, string) error {
		return ratelimit.RetryError(codes.Unavailable, "a refresh of this connection is in progress on another replica", 2*time.Second)
	}}
	base := serveHTTP(t, newGateway(t, nil, serveFakes(t, rec), nil))
	code, h, body := send(t, "GET", base+"/v1/connections", "")
	if code != 503 || h.Get("Retry-After") != "2" || !strings.Contains(body, "in progress on another replica") {
		t.Fatalf("%d Retry-After %q %s", code, h.Get("Retry-After"), body)
	}
}

// 401 and 403 carry an RFC 6750 challenge.
func TestAuthenticationChallenges(t *testing.T) {
	rec := &recorder{answer: func(ctx context.Context, method string) error {
		switch method {
		case "ListConnections":
			return status.Error(codes.Unauthenticated, "invalid credentials")
		case "DeleteConnection":
			return status.Error(codes.PermissionDenied, "method requires scope token:admin")
		}
		return status.Error(codes.Unauthenticated, `missing "credentials"`)
	}}
	base := serveHTTP(t, newGateway(t, nil, serveFakes(t, rec), nil))
	cases := []struct {
		method, path string
		headers      []string
		code         int
		want         string
	}{
		{"GET", "/v1/connections/zoho/x", nil, 401, `Bearer realm="sergas"`},
		{"GET", "/v1/connections", []string{"Authorization", "Bearer nope"}, 401,
			`Bearer realm="sergas", error="invalid_token", error_description="invalid credentials"`},
		{"DELETE", "/v1/connections/zoho/x", []string{"Authorization", "Bearer k"}, 403,
			`Bearer realm="sergas", error="insufficient_scope", error_description="method requires scope token:admin"`},
		{"GET", "/v1/connections/zoho/x", []string{"Authorization", "Basic x"}, 401, `Bearer realm="sergas"`},
		{"GET", "/v1/connections/zoho/x", []string{"Authorization", "bearer x"}, 401,
			`Bearer realm="sergas", error="invalid_token", error_description="missing ?credentials?"`},
	}
	for _, c := range cases {
		code, h, body := send(t, c.method, base+c.path, "", c.headers...)
		if code != c.code || h.Get("WWW-Authenticate") != c.want {
			t.Errorf("%s %s: %d WWW-Authenticate %q (%s), want %d %q", c.method, c.path, code, h.Get("WWW-Authenticate"), body, c.code, c.want)
		}
	}
}

// A connection lost in the middle of an RPC (the service process dies) is a transport failure too.
func TestConnectionLostMidCallAnswersPlain503(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	rec := &recorder{answer: func(context.Context, string) error {
		entered <- struct{}{}
		<-release
		return nil
	}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tokenv1.RegisterTokenServiceServer(srv, fakeToken{recorder: rec})
	go func() { _ = srv.Serve(lis) }()
	base := serveHTTP(t, newGateway(t, nil, lis.Addr().String(), nil))
	type answer struct {
		code int
		h    http.Header
		body string
	}
	got := make(chan answer, 1)
	go func() {
		code, h, body := send(t, "GET", base+"/v1/connections", "")
		got <- answer{code, h, body}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the service")
	}
	go srv.Stop() // closes the connection under the call; returns once the handler does
	select {
	case a := <-got:
		if a.code != 503 || a.h.Get("Retry-After") == "" || !strings.Contains(a.body, `"service unavailable"`) || internalAddr.MatchString(a.body) {
			t.Fatalf("%d Retry-After %q %s", a.code, a.h.Get("Retry-After"), a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the connection was lost")
	}
}
