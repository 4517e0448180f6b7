package zohotest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/services/webhook/zohocrm"
)

const tok = "1000.standin.token"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStandIn(t *testing.T) (*Server, *clock) {
	t.Helper()
	s := New(t)
	clk := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	s.Now = clk.now
	s.AllowToken(tok)
	return s, clk
}

// received is what a notify URL got.
type received struct {
	path, contentType string
	body              map[string]any
}

// receiver is a notify URL that records what it is sent, answering status.
func receiver(t *testing.T, status int) (string, <-chan received) {
	t.Helper()
	ch := make(chan received, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body)
		ch <- received{path: r.URL.Path, contentType: r.Header.Get("Content-Type"), body: body}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

// call sends one request to actions/watch as a client would and decodes the answer.
func call(t *testing.T, s *Server, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// itemCode is the code of the first watch item, or of the whole answer.
func itemCode(ans map[string]any) string {
	if items, ok := ans["watch"].([]any); ok && len(items) > 0 {
		m, _ := items[0].(map[string]any)
		c, _ := m["code"].(string)
		return c
	}
	c, _ := ans["code"].(string)
	return c
}

func enable(t *testing.T, s *Server, w zohocrm.Watch) {
	t.Helper()
	if _, err := (&zohocrm.Client{}).Enable(context.Background(), zohocrm.Auth{APIDomain: s.URL, AccessToken: tok}, w); err != nil {
		t.Fatalf("enable %s: %v", w.ChannelID, err)
	}
}

// Notifications go to every live channel whose events match the module and operation, with Zoho's
// body, and to no other: not to a channel for another operation or module, not to an expired one.
func TestNotifyReachesLiveMatchingChannelsOnly(t *testing.T) {
	s, clk := newStandIn(t)
	url, got := receiver(t, http.StatusAccepted)
	in := func(id string, d time.Duration, events ...string) zohocrm.Watch {
		return zohocrm.Watch{ChannelID: id, Events: events, Expiry: clk.now().Add(d), Token: "tok-" + id,
			NotifyURL: url + "/webhooks/crm?channel=" + id}
	}
	enable(t, s, in("1", 2*time.Hour, "Deals.all"))
	enable(t, s, in("2", 2*time.Hour, "Deals.create"))
	enable(t, s, in("3", 2*time.Hour, "Contacts.all"))
	enable(t, s, in("4", 30*time.Minute, "Deals.all", "Contacts.edit"))
	w5 := in("5", 2*time.Hour, "Deals.edit")
	w5.ReturnAffectedFieldValues = true
	enable(t, s, w5)
	clk.advance(time.Hour) // channel 4 expires

	drain := func() map[string]received {
		out := map[string]received{}
		for {
			select {
			case r := <-got:
				out[r.body["channel_id"].(string)] = r
			default:
				return out
			}
		}
	}
	for _, tc := range []struct {
		module, op string
		want       []string
	}{
		{"Deals", "insert", []string{"1", "2"}},
		{"Deals", "update", []string{"1", "5"}},
		{"Deals", "delete", []string{"1"}},
		{"Contacts", "update", []string{"3"}},
		{"Leads", "insert", nil},
	} {
		n, err := s.Notify(context.Background(), tc.module, tc.op, []string{"4150868000001"}, []string{"Stage"})
		if err != nil {
			t.Fatalf("%s %s: %v", tc.module, tc.op, err)
		}
		r := drain() // Notify returns after every post was answered
		var ids []string
		for id := range r {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if n != len(tc.want) || !slices.Equal(ids, tc.want) {
			t.Fatalf("%s %s reached %v (n=%d), want %v", tc.module, tc.op, ids, n, tc.want)
		}
		for id, rec := range r {
			b := rec.body
			if rec.contentType != "application/json" || rec.path != "/webhooks/crm" || b["token"] != "tok-"+id ||
				b["module"] != tc.module || b["operation"] != tc.op || b["server_time"] != float64(clk.now().UnixMilli()) ||
				b["resource_uri"] != s.URL+"/crm/v2/"+tc.module {
				t.Fatalf("channel %s got %+v", id, rec)
			}
			if q, _ := b["query_params"].(map[string]any); q["channel"] != id {
				t.Fatalf("query_params = %v", b["query_params"])
			}
			if ids, _ := b["ids"].([]any); len(ids) != 1 || ids[0] != "4150868000001" {
				t.Fatalf("ids = %v", b["ids"])
			}
			af, _ := b["affected_fields"].([]any)
			if tc.op == "update" {
				if len(af) != 1 || !strings.Contains(mustJSON(af[0]), `"4150868000001":["Stage"]`) {
					t.Fatalf("affected_fields = %v", b["affected_fields"])
				}
			} else if af == nil || len(af) != 0 {
				t.Fatalf("affected_fields of %s = %v, want []", tc.op, b["affected_fields"])
			}
			if _, has := b["affected_values"]; has != (id == "5" && tc.op == "update") {
				t.Fatalf("channel %s affected_values = %v", id, b["affected_values"])
			}
		}
	}
	// Renewing brings nothing back for an expired channel; enabling it again does.
	enable(t, s, in("4", time.Hour, "Deals.all"))
	if n, err := s.Notify(context.Background(), "Deals", "delete", []string{"1"}, nil); err != nil || n != 2 {
		t.Fatalf("after re-enable: n=%d err=%v", n, err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A notify URL that refuses fails Notify, which says how many were sent before.
func TestNotifyFailsOnRefusal(t *testing.T) {
	s, clk := newStandIn(t)
	url, _ := receiver(t, http.StatusUnauthorized)
	enable(t, s, zohocrm.Watch{ChannelID: "1", Events: []string{"Deals.all"}, Expiry: clk.now().Add(time.Hour), NotifyURL: url})
	n, err := s.Notify(context.Background(), "Deals", "insert", []string{"1"}, nil)
	if err == nil || n != 0 || !strings.Contains(err.Error(), "401") {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if _, err := s.Notify(context.Background(), "Deals", "upsert", nil, nil); err == nil {
		t.Fatal("unknown operation accepted")
	}
}

// The stand-in refuses what Zoho refuses, with Zoho's codes.
func TestRefusals(t *testing.T) {
	s, clk := newStandIn(t)
	exp := func(d time.Duration) string { return clk.now().Add(d).Format("2006-01-02T15:04:05-07:00") }
	item := func(fields string) string {
		return `{"watch":[{` + fields + `}]}`
	}
	good := `"channel_id":"10","events":["Deals.all"],"notify_url":"https://h.example/x","channel_expiry":"` + exp(time.Hour) + `"`
	auth := "Zoho-oauthtoken " + tok
	cases := []struct {
		name, method, path, auth, body string
		status                         int
		code                           string
	}{
		{"no auth", "POST", "/crm/v6/actions/watch", "", item(good), 401, "AUTHENTICATION_FAILURE"},
		{"bearer", "POST", "/crm/v6/actions/watch", "Bearer " + tok, item(good), 401, "INVALID_TOKEN"},
		{"unknown token", "POST", "/crm/v6/actions/watch", "Zoho-oauthtoken nope", item(good), 401, "INVALID_TOKEN"},
		{"bad version", "POST", "/crm/six/actions/watch", auth, item(good), 404, "INVALID_URL_PATTERN"},
		{"not json", "POST", "/crm/v6/actions/watch", auth, "{", 400, "INVALID_DATA"},
		{"no watch", "POST", "/crm/v6/actions/watch", auth, `{}`, 400, "MANDATORY_NOT_FOUND"},
		{"no channel", "POST", "/crm/v6/actions/watch", auth, item(`"events":["Deals.all"],"notify_url":"https://h.example/x"`), 400, "MANDATORY_NOT_FOUND"},
		{"channel letters", "POST", "/crm/v6/actions/watch", auth, item(strings.Replace(good, `"10"`, `"1a"`, 1)), 400, "INVALID_DATA"},
		{"channel over long", "POST", "/crm/v6/actions/watch", auth, item(strings.Replace(good, `"10"`, `"99999999999999999999"`, 1)), 400, "INVALID_DATA"},
		{"bad event", "POST", "/crm/v6/actions/watch", auth, item(strings.Replace(good, `Deals.all`, `Deals.upsert`, 1)), 400, "INVALID_DATA"},
		{"no events", "POST", "/crm/v6/actions/watch", auth, item(`"channel_id":"10","notify_url":"https://h.example/x"`), 400, "MANDATORY_NOT_FOUND"},
		{"no notify url", "POST", "/crm/v6/actions/watch", auth, item(`"channel_id":"10","events":["Deals.all"]`), 400, "MANDATORY_NOT_FOUND"},
		{"token 51", "POST", "/crm/v6/actions/watch", auth, item(good + `,"token":"` + strings.Repeat("t", 51) + `"`), 400, "INVALID_DATA"},
		{"expiry past", "POST", "/crm/v6/actions/watch", auth, item(strings.Replace(good, exp(time.Hour), exp(-time.Second), 1)), 400, "INVALID_DATA"},
		{"expiry zulu", "POST", "/crm/v6/actions/watch", auth, item(strings.Replace(good, exp(time.Hour), clk.now().Add(time.Hour).Format("2006-01-02T15:04:05Z"), 1)), 400, "INVALID_DATA"},
		{"expiry garbage", "POST", "/crm/v6/actions/watch", auth, item(strings.Replace(good, exp(time.Hour), "tomorrow", 1)), 400, "INVALID_DATA"},
		{"update unknown", "PUT", "/crm/v6/actions/watch", auth, item(good), 400, "INVALID_DATA"},
		{"disable unknown", "DELETE", "/crm/v6/actions/watch?channel_ids=10", auth, "", 400, "INVALID_DATA"},
		{"disable no ids", "DELETE", "/crm/v6/actions/watch", auth, "", 400, "MANDATORY_NOT_FOUND"},
		{"patch", "PATCH", "/crm/v6/actions/watch", auth, item(good), 405, "INVALID_REQUEST_METHOD"},
		{"token 50 ok", "POST", "/crm/v6/actions/watch", auth, item(good + `,"token":"` + strings.Repeat("ü", 50) + `"`), 201, "SUCCESS"},
		{"numeric channel ok", "POST", "/crm/v6/actions/watch", auth, item(strings.Replace(good, `"10"`, `11`, 1)), 201, "SUCCESS"},
	}
	for _, tc := range cases {
		status, ans := call(t, s, tc.method, tc.path, tc.auth, tc.body)
		if status != tc.status || itemCode(ans) != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, ans, tc.status, tc.code)
		}
	}
	if w, ok := s.Channel("10"); !ok || len([]rune(w.Token)) != 50 {
		t.Fatalf("channel 10 = %+v, %v", w, ok)
	}
	// Beyond the maximum: Zoho's default (one hour); refused when RefuseOverMax is set. v2.1's maximum
	// is a day, v6's a week.
	for _, tc := range []struct {
		version string
		ask     time.Duration
		want    time.Duration
	}{{"v6", 7 * 24 * time.Hour, 7 * 24 * time.Hour}, {"v6", 8 * 24 * time.Hour, time.Hour},
		{"v2.1", 24 * time.Hour, 24 * time.Hour}, {"v2.1", 25 * time.Hour, time.Hour}, {"v7", 0, time.Hour}} {
		body := item(`"channel_id":"20","events":["Deals.all"],"notify_url":"https://h.example/x"`)
		if tc.ask > 0 {
			body = item(`"channel_id":"20","events":["Deals.all"],"notify_url":"https://h.example/x","channel_expiry":"` + exp(tc.ask) + `"`)
		}
		if status, ans := call(t, s, "POST", "/crm/"+tc.version+"/actions/watch", auth, body); status != http.StatusCreated {
			t.Fatalf("%s %v: %d %v", tc.version, tc.ask, status, ans)
		}
		if w, _ := s.Channel("20"); !w.Expiry.Equal(clk.now().Add(tc.want)) {
			t.Errorf("%s asked %v: expiry %v, want now+%v", tc.version, tc.ask, w.Expiry, tc.want)
		}
	}
	s.RefuseOverMax = true
	if status, ans := call(t, s, "POST", "/crm/v6/actions/watch", auth,
		item(`"channel_id":"21","events":["Deals.all"],"notify_url":"https://h.example/x","channel_expiry":"`+exp(8*24*time.Hour)+`"`)); status != 400 || itemCode(ans) != "INVALID_DATA" {
		t.Fatalf("RefuseOverMax: %d %v", status, ans)
	}
}

// GET details lists live channels, one entry per module, and answers 204 when there is none.
func TestDetails(t *testing.T) {
	s, clk := newStandIn(t)
	auth := "Zoho-oauthtoken " + tok
	if status, _ := call(t, s, "GET", "/crm/v6/actions/watch", auth, ""); status != http.StatusNoContent {
		t.Fatalf("empty: %d", status)
	}
	enable(t, s, zohocrm.Watch{ChannelID: "1", Events: []string{"Deals.all", "Contacts.create"}, Expiry: clk.now().Add(time.Hour),
		Token: "t1", NotifyURL: "https://h.example/x"})
	status, ans := call(t, s, "GET", "/crm/v6/actions/watch?channel_id=1", auth, "")
	items, _ := ans["watch"].([]any)
	if status != 200 || len(items) != 2 {
		t.Fatalf("details: %d %v", status, ans)
	}
	first, _ := items[0].(map[string]any)
	if first["resource_name"] != "Contacts" || first["token"] != "t1" || first["channel_expiry"] != "2026-11-26T18:30:00+05:30" {
		t.Fatalf("details item: %v", first)
	}
	clk.advance(time.Hour)
	if status, _ := call(t, s, "GET", "/crm/v6/actions/watch?channel_id=1", auth, ""); status != http.StatusNoContent {
		t.Fatalf("expired channel listed: %d", status)
	}
}

// Concurrent calls, notifications, clock moves and inspections are race-free (run with -race).
func TestConcurrentUse(t *testing.T) {
	s, clk := newStandIn(t)
	url, got := receiver(t, http.StatusOK)
	done := make(chan struct{})
	defer close(done)
	go func() { // drain until the test ends
		for {
			select {
			case <-got:
			case <-done:
				return
			}
		}
	}()
	c := &zohocrm.Client{}
	a := zohocrm.Auth{APIDomain: s.URL, AccessToken: tok}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('1' + i))
			for range 10 {
				w := zohocrm.Watch{ChannelID: id, Events: []string{"Deals.all"}, Expiry: clk.now().Add(time.Hour), NotifyURL: url}
				if _, err := c.Enable(context.Background(), a, w); err != nil {
					t.Error(err)
					return
				}
				_, _ = s.Notify(context.Background(), "Deals", "insert", []string{"1"}, nil)
				_, _ = s.Channel(id)
				_ = s.Requests()
				clk.advance(time.Second)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 10 {
			s.SetNow(clk.now)
			s.FailNext(0, 500)
		}
	}()
	wg.Wait()
	if r := s.Requests(); r[http.MethodPost] != 80 {
		t.Fatalf("requests = %v", r)
	}
}
