package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// Bad REST input is refused with 4xx before it reaches a service, never with a 500.
func TestRESTInputIsRefusedBeforeTheService(t *testing.T) {
	rec := &recorder{}
	g := newGateway(t, map[string]string{"GATEWAY_MAX_BODY_BYTES": "1024"}, serveFakes(t, rec), nil)
	base := serveHTTP(t, g)
	big := `{"refreshToken":"` + strings.Repeat("x", 2000) + `"}`
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"invalid UTF-8 in the path", "GET", "/v1/connections/zoho/a%FF", "", 400},
		{"invalid UTF-8 in a query value", "GET", "/v1/connections?provider=%FF", "", 400},
		{"invalid UTF-8 in a query key", "GET", "/v1/connections?%FF=1", "", 400},
		{"malformed query escape", "GET", "/v1/connections?provider=%zz", "", 400},
		{"body over GATEWAY_MAX_BODY_BYTES", "PUT", "/v1/connections/zoho/x", big, 413},
		{"trailing data after the JSON body", "PUT", "/v1/connections/zoho/x", `{"refreshToken":"r"} {"accessToken":"a"}`, 400},
		{"trailing garbage after the JSON body", "PUT", "/v1/connections/zoho/x", `{"refreshToken":"r"}}`, 400},
		{"unknown query parameter", "GET", "/v1/connections?pageSize=5&bogus=1", "", 400},
		{"query on a route that reads none", "GET", "/v1/connections/zoho/x?verbose=1", "", 400},
		{"query naming a path-bound field", "GET", "/v1/connections/zoho/x/refresh-events?provider=other", "", 400},
		{"query on a route whose body is everything", "PUT", "/v1/connections/zoho/x?accessToken=a", `{"refreshToken":"r"}`, 400},
		{"sub-field of a scalar", "GET", "/v1/connections?pageSize.x=1", "", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(rec.all())
			code, _, body := send(t, c.method, base+c.path, c.body)
			if code != c.want {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
			}
			if n := len(rec.all()) - before; n != 0 {
				t.Fatalf("%d calls reached the service", n)
			}
		})
	}
}

// A body over the limit without Content-Length (chunked) also answers 413.
func TestChunkedBodyOverLimitAnswers413(t *testing.T) {
	rec := &recorder{}
	base := serveHTTP(t, newGateway(t, map[string]string{"GATEWAY_MAX_BODY_BYTES": "1024"}, serveFakes(t, rec), nil))
	body := io.MultiReader(strings.NewReader(`{"refreshToken":"`), strings.NewReader(strings.Repeat("x", 4000)+`"}`))
	req, _ := http.NewRequest("PUT", base+"/v1/connections/zoho/x", body)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || len(rec.all()) != 0 {
		t.Fatalf("chunked oversized body: %d, %d calls", resp.StatusCode, len(rec.all()))
	}
}

// What the routes do read still works, in both spellings grpc-gateway accepts.
func TestRESTInputThatIsValidStillPasses(t *testing.T) {
	rec := &recorder{}
	base := serveHTTP(t, newGateway(t, map[string]string{"GATEWAY_MAX_BODY_BYTES": "1024"}, serveFakes(t, rec), nil))
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/connections?pageSize=5&provider=zoho", ""},
		{"GET", "/v1/connections?page_size=5&page_token=t", ""},
		{"GET", "/v1/connections/zoho/x", ""},
		{"GET", "/v1/connections/zoho/x/refresh-events?pageSize=2", ""},
		{"PUT", "/v1/connections/zoho/x", "{\"refreshToken\":\"r\"}\n\t "},
		{"GET", "/v1/connections/zoho/%C3%A9t%C3%A9", ""},
	} {
		if code, _, body := send(t, c.method, base+c.path, c.body); code != 200 {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
	calls := rec.all()
	if len(calls) != 6 {
		t.Fatalf("%d calls reached the service, want 6", len(calls))
	}
	if got := calls[1].req.(*tokenv1.ListConnectionsRequest); got.GetPageSize() != 5 || got.GetPageToken() != "t" {
		t.Errorf("snake_case query not applied: %v", got)
	}
	if got := calls[4].req.(*tokenv1.CreateConnectionRequest); got.GetRefreshToken() != "r" {
		t.Errorf("body not applied: %v", got)
	}
	if got := calls[5].req.(*tokenv1.GetConnectionRequest); got.GetConnectionId() != "été" {
		t.Errorf("UTF-8 path: %q", got.GetConnectionId())
	}
}

// A method a route does not take answers 405 with Allow listing the ones it does (grpc-gateway: 501).
func TestOtherMethodsAnswer405WithAllow(t *testing.T) {
	rec := &recorder{}
	base := serveHTTP(t, newGateway(t, nil, serveFakes(t, rec), nil))
	cases := []struct {
		method, path string
		allow        []string
	}{
		{"HEAD", "/v1/connections/zoho/x", []string{"DELETE", "GET", "PUT"}},
		{"OPTIONS", "/v1/connections/zoho/x", []string{"DELETE", "GET", "PUT"}},
		{"PATCH", "/v1/connections/zoho/x", []string{"DELETE", "GET", "PUT"}},
		{"POST", "/v1/connections/zoho/x", []string{"DELETE", "GET", "PUT"}},
		{"PROPFIND", "/v1/audit/events", []string{"GET", "POST"}},
		{"POST", "/v1/webhook/events/abc", []string{"GET"}},
	}
	for _, c := range cases {
		code, h, body := send(t, c.method, base+c.path, "")
		allow := strings.Split(h.Get("Allow"), ", ")
		slices.Sort(allow)
		if code != 405 || !slices.Equal(allow, c.allow) {
			t.Errorf("%s %s: %d Allow %q %s; want 405 Allow %v", c.method, c.path, code, h.Get("Allow"), body, c.allow)
		}
		var st struct{ Code int }
		if c.method != "HEAD" && (json.Unmarshal([]byte(body), &st) != nil || st.Code != int(codes.InvalidArgument)) {
			t.Errorf("%s %s: body %s, want code InvalidArgument (the caller's mistake, not a route still to build)", c.method, c.path, body)
		}
	}
	if code, _, _ := send(t, "GET", base+"/v1/nothing-here", ""); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("%d calls reached the service", n)
	}
}

// X-HTTP-Method-Override (and the form-POST-as-GET fallback it rides on) is ignored unless
// GATEWAY_HTTP_METHOD_OVERRIDE is set: otherwise a form any web page can submit reaches DELETE.
func TestMethodOverrideIsOffByDefault(t *testing.T) {
	form := []string{"Content-Type", "application/x-www-form-urlencoded", "X-HTTP-Method-Override", "DELETE"}
	rec := &recorder{}
	base := serveHTTP(t, newGateway(t, nil, serveFakes(t, rec), nil))
	if code, _, body := send(t, "POST", base+"/v1/connections/zoho/x", "a=b", form...); code != 405 {
		t.Errorf("override off: %d %s, want 405", code, body)
	}
	if code, _, body := send(t, "POST", base+"/v1/connections", "pageSize=1", form[:2]...); code != 405 {
		t.Errorf("form POST to a GET route, override off: %d %s, want 405", code, body)
	}
	if calls := rec.all(); len(calls) != 0 {
		t.Fatalf("reached the service: %v", calls[0].method)
	}

	rec = &recorder{}
	base = serveHTTP(t, newGateway(t, map[string]string{"GATEWAY_HTTP_METHOD_OVERRIDE": "true"}, serveFakes(t, rec), nil))
	if code, _, body := send(t, "POST", base+"/v1/connections/zoho/x", "", form...); code != 200 {
		t.Errorf("override on: %d %s", code, body)
	}
	if code, _, body := send(t, "POST", base+"/v1/connections", "pageSize=3", form[:2]...); code != 200 {
		t.Errorf("form POST to a GET route, override on: %d %s", code, body)
	}
	if code, _, body := send(t, "POST", base+"/v1/connections", "provider=%FF", form[:2]...); code != 400 {
		t.Errorf("form field not UTF-8, override on: %d %s", code, body)
	}
	calls := rec.all()
	if len(calls) != 2 || calls[0].method != "DeleteConnection" || calls[1].req.(*tokenv1.ListConnectionsRequest).GetPageSize() != 3 {
		t.Fatalf("override on: calls %v", calls)
	}
}

// The raw webhook route keeps its own body limit: REST's limit and its reading ahead do not apply to it.
func TestWebhookBodyLimitIsItsOwn(t *testing.T) {
	rec := &recorder{}
	env := map[string]string{"GATEWAY_MAX_BODY_BYTES": "1024", "WEBHOOK_MAX_BODY_BYTES": "4096"}
	base := serveHTTP(t, newGateway(t, env, serveFakes(t, rec), nil))
	if code, _, body := send(t, "POST", base+"/webhooks/zoho", strings.Repeat("x", 3000)); code != 202 {
		t.Errorf("3000 bytes under WEBHOOK_MAX_BODY_BYTES: %d %s", code, body)
	}
	if code, _, body := send(t, "POST", base+"/webhooks/zoho", strings.Repeat("x", 5000)); code != 413 {
		t.Errorf("5000 bytes over WEBHOOK_MAX_BODY_BYTES: %d %s", code, body)
	}
	if calls := rec.all(); len(calls) != 1 || len(calls[0].req.(*webhookv1.IngestRequest).GetBody()) != 3000 {
		t.Errorf("calls %d", len(calls))
	}
}

// A webhook whose path or header values are not UTF-8 answers 400 before the webhook service, not 500.
func TestWebhookWithInvalidUTF8Answers400(t *testing.T) {
	rec := &recorder{}
	base := serveHTTP(t, newGateway(t, nil, serveFakes(t, rec), nil))
	if code, _, body := send(t, "POST", base+"/webhooks/zo%FFho", "{}"); code != 400 {
		t.Errorf("source: %d %s", code, body)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /webhooks/zoho HTTP/1.1\r\nHost: x\r\nX-Note: a\xffb\r\nContent-Length: 2\r\n\r\n{}")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("header value: %d", resp.StatusCode)
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("%d calls reached the service", n)
	}
}
