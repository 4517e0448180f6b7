package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/gateway"
)

// A Poll through the gateway whose wait reaches past GATEWAY_REQUEST_TIMEOUT answers (empty) before the
// request's deadline, instead of the gateway cutting it with 503: the service stops waiting in time to
// answer.
func TestPollThroughTheGatewayAnswersBeforeTheRequestTimeout(t *testing.T) {
	consumer := authtest.NewKey(t, "agent", auth.ScopeWebhookConsume)
	admin := authtest.NewKey(t, "admin", auth.ScopeWebhookAdmin)
	gw := authtest.NewKey(t, "gateway", auth.ScopeWebhookIngest)
	e := startE2E(t, db.SQLite, map[string]string{"AUTH_API_KEYS": authtest.JSON(consumer, admin, gw), "GATEWAY_WEBHOOK_API_KEY": gw.Key})
	base := serveGateway(t, map[string]string{"WEBHOOK_GRPC_ENDPOINT": e.webhookAddr, "GATEWAY_REQUEST_TIMEOUT": "2s"})
	conn, err := grpc.NewClient(e.webhookAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(admin.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sub, err := webhookv1.NewWebhookServiceClient(conn).CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "agents"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", base+"/v1/webhook/deliveries:poll",
		strings.NewReader(`{"subscriptionId":"`+sub.GetSubscription().GetId()+`","wait":"10s"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+consumer.Key)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v (%v)", resp.StatusCode, out, err)
	}
	if d, _ := out["deliveries"].([]any); len(d) != 0 {
		t.Fatalf("deliveries %v", out)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("answered after %v, past the 2 s request timeout", took)
	}
}

// serveGateway runs a gateway with its real Serve (request timeout included, which the e2e harness's
// httptest server of its handler leaves out) and returns its base URL.
func serveGateway(t *testing.T, env map[string]string) string {
	t.Helper()
	vars := map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "TLS_DISABLED": "true",
		"TOKEN_GRPC_ENDPOINT": "127.0.0.1:1", "AUDIT_GRPC_ENDPOINT": "127.0.0.1:1"}
	for k, v := range env {
		vars[k] = v
	}
	cfgEnv := config.FromMap(vars)
	cfg := gateway.LoadConfig(cfgEnv)
	if err := cfgEnv.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), insecure.NewCredentials(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() { cancel(); <-served; g.Close() })
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-served:
		t.Fatalf("gateway: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not start")
	}
	return ""
}

// End to end through the gateway's real Serve (1 s request timeout, so a write timeout of 6 s): a
// consumer's Receive over REST gets each signed webhook as an NDJSON line as it is stored, on a stream
// that outlives every timeout, and acknowledges it over REST.
func TestReceiveThroughTheGatewayEndToEnd(t *testing.T) {
	t.Parallel()
	consumer := authtest.NewKey(t, "agent", auth.ScopeWebhookConsume)
	admin := authtest.NewKey(t, "admin", auth.ScopeWebhookAdmin)
	gw := authtest.NewKey(t, "gateway", auth.ScopeWebhookIngest)
	e := startE2E(t, db.SQLite, map[string]string{"AUTH_API_KEYS": authtest.JSON(consumer, admin, gw), "GATEWAY_WEBHOOK_API_KEY": gw.Key,
		"WEBHOOK_RECEIVE_HEARTBEAT": "1s"})
	base := serveGateway(t, map[string]string{"WEBHOOK_GRPC_ENDPOINT": e.webhookAddr, "GATEWAY_REQUEST_TIMEOUT": "1s"})
	conn, err := grpc.NewClient(e.webhookAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(admin.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sub, err := webhookv1.NewWebhookServiceClient(conn).CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "agents"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(body, id string) string {
		code, _, out := e.post(t, body, "X-Hub-Signature-256", ghSig(e2eSecret, body), "X-GitHub-Delivery", id)
		if code != 202 {
			t.Fatalf("webhook %s: %d %v", id, code, out)
		}
		return out["eventId"].(string)
	}
	rest := func(method, path, body string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+consumer.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// The gateway writes a stream's status and headers with its first message: Receive sends an empty
	// one at once (a heartbeat), so that an idle consumer gets its answer without waiting for an event.
	start := time.Now()
	resp := rest("POST", "/v1/webhook/deliveries:receive", `{"subscriptionId":"`+sub.GetSubscription().GetId()+`","consumer":"agent-1"}`)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the stream's headers took %v with nothing to deliver", took)
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	heartbeats := 0
	next := func() (eventID, ackID string) {
		t.Helper()
		// Heartbeats (lines without deliveries) come at least every second here; skip them.
		for range 100 {
			read := make(chan bool, 1)
			go func() { read <- lines.Scan() }()
			select {
			case ok := <-read:
				if !ok {
					t.Fatalf("the stream ended: %v", lines.Err())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no line within 10 s")
			}
			var beat struct {
				Result *struct {
					Deliveries []json.RawMessage `json:"deliveries"`
				} `json:"result"`
			}
			if err := json.Unmarshal(lines.Bytes(), &beat); err != nil || beat.Result == nil {
				t.Fatalf("line %s", lines.Text())
			}
			if len(beat.Result.Deliveries) > 0 {
				break
			}
			heartbeats++
		}
		var line struct {
			Result *struct {
				Deliveries []struct {
					AckID string `json:"ackId"`
					Event struct {
						ID string `json:"id"`
					} `json:"event"`
				} `json:"deliveries"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil || line.Result == nil || len(line.Result.Deliveries) != 1 {
			t.Fatalf("line %s", lines.Text())
		}
		return line.Result.Deliveries[0].Event.ID, line.Result.Deliveries[0].AckID
	}
	ack := func(ackID string) {
		t.Helper()
		r := rest("POST", "/v1/webhook/deliveries:ack", `{"ackIds":["`+ackID+`"]}`)
		defer r.Body.Close()
		var out struct {
			Refused []string `json:"refusedAckIds"`
		}
		if err := json.NewDecoder(r.Body).Decode(&out); err != nil || r.StatusCode != http.StatusOK || len(out.Refused) != 0 {
			t.Fatalf("ack: %d %v %v", r.StatusCode, out, err)
		}
	}
	first := send(`{"n":1}`, "d-1")
	if got, ackID := next(); got != first {
		t.Fatalf("received %s, want %s", got, first)
	} else {
		ack(ackID)
	}
	// The precondition is time itself: the stream must outlive the request and write timeouts.
	select {
	case <-time.After(6500 * time.Millisecond):
	case <-t.Context().Done():
	}
	second := send(`{"n":2}`, "d-2")
	if got, ackID := next(); got != second {
		t.Fatalf("received %s, want %s", got, second)
	} else {
		ack(ackID)
	}
	if took := time.Since(start); took < 6500*time.Millisecond {
		t.Fatalf("the stream lasted %v", took)
	}
	// One at the start, then about one a second of the 6.5 s idle wait.
	if heartbeats < 4 {
		t.Fatalf("%d heartbeats in %v", heartbeats, time.Since(start))
	}
}
