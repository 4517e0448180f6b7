package processtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/proctest"
	"github.com/sergas/core/internal/testutil"
)

func TestMain(m *testing.M) { proctest.Main(m) }

var webhookService = proctest.Service{Name: "webhook", Package: "github.com/sergas/core/services/webhook/cmd/sergas-webhook"}

// The hmac source the senders deliver to, in the environment form: hex HMAC-SHA256 of the body in
// X-Zoho-Signature, the delivery id in X-Zoho-Event-Id.
const (
	source      = "crm"
	secret      = "processtest-hmac-secret-0123456789"
	sigHeader   = "X-Zoho-Signature"
	eventHeader = "X-Zoho-Event-Id"
)

// keys are the gateway's credential (webhook:ingest) and a reader's (webhook:read).
type keys struct{ ingest, read authtest.Key }

func newKeys(t *testing.T) keys {
	return keys{ingest: authtest.NewKey(t, "gateway", auth.ScopeWebhookIngest), read: authtest.NewKey(t, "reader", auth.ScopeWebhookRead)}
}

// startWebhook runs sergas-webhook in production mode on c's database with the hmac source, API-key
// authentication with k, and no limit that a test's load could reach (rates and backlog unlimited), so
// that every refusal a sender sees is the kill.
func startWebhook(t *testing.T, k keys, c db.Config) *proctest.Proc {
	t.Helper()
	return webhookService.Start(t, webhookEnv(c, k.ingest, k.read))
}

// webhookEnv is startWebhook's configuration with credentials ks.
func webhookEnv(c db.Config, ks ...authtest.Key) map[string]string {
	env := webhookService.DatabaseEnv(c)
	env["AUTH_API_KEYS"] = authtest.JSON(ks...)
	env["WEBHOOK_SOURCES"] = source + ":hmac"
	env["WEBHOOK_SOURCE_CRM_SECRETS"] = secret
	env["WEBHOOK_RATE_LIMIT_PER_SECOND"] = "0"
	env["WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND"] = "0"
	env["WEBHOOK_MAX_QUEUE_SIZE"] = "0"
	return env
}

// client connects to p presenting key.
func client(t *testing.T, p *proctest.Proc, key authtest.Key) webhookv1.WebhookServiceClient {
	t.Helper()
	return webhookv1.NewWebhookServiceClient(p.Conn(t, authtest.Bearer(key.Key)))
}

// delivery is one signed webhook a sender delivers (and may deliver again): a unique id and body.
type delivery struct {
	id   string
	body []byte
}

// newDelivery is the delivery with id: a JSON line naming it, then 0.5-1.5 KiB of bytes drawn from a
// generator seeded with the id (any byte value, NUL included), so that bodies are unique, only an exact
// copy compares equal, and two senders of one id send the same bytes.
func newDelivery(id string) delivery {
	seed := sha256.Sum256([]byte(id))
	r := mrand.New(mrand.NewChaCha8(seed))
	tail := make([]byte, 512+r.IntN(1024))
	for i := range tail {
		tail[i] = byte(r.Uint32())
	}
	return delivery{id: id, body: append(fmt.Appendf(nil, `{"delivery":%q}`+"\n", id), tail...)}
}

// request is d as the gateway hands it to Ingest, signed with the source's secret.
func (d delivery) request() *webhookv1.IngestRequest {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(d.body)
	return &webhookv1.IngestRequest{Source: source, Body: d.body, Headers: []*webhookv1.Header{
		{Name: "Content-Type", Values: []string{"application/octet-stream"}},
		{Name: sigHeader, Values: []string{hex.EncodeToString(m.Sum(nil))}},
		{Name: eventHeader, Values: []string{d.id}},
	}}
}

// acked is a delivery and the event id the service acknowledged it with, as new or as a duplicate.
type acked struct {
	d         delivery
	eventID   string
	duplicate bool
}

// stored is what the service holds after a restart: every event of the source, payload included, by
// event id and by the delivery id it was sent with.
type stored struct {
	byID       map[string]*webhookv1.Event
	byDelivery map[string]*webhookv1.Event
}

// storedEvents lists every event of the source (pages that are not settled yet come back short, so it
// asks again until the last page, within a minute) and reads each with GetEvent for its payload. It
// fails when an event id, a dedupe key or a delivery id is stored twice, or when an event is not one
// of sent (by delivery id, with exactly its body): nothing may be stored that nobody sent.
func storedEvents(t *testing.T, ctx context.Context, c webhookv1.WebhookServiceClient, sent map[string]delivery) stored {
	t.Helper()
	var (
		listed  []*webhookv1.Event
		token   string
		listErr error
	)
	testutil.Eventually(t, time.Minute, "the last page of ListEvents", func() bool {
		resp, err := c.ListEvents(ctx, &webhookv1.ListEventsRequest{Source: source, PageSize: 1000, PageToken: token})
		if err != nil {
			listErr = err
			return true
		}
		listed = append(listed, resp.GetEvents()...)
		token = resp.GetNextPageToken()
		return token == ""
	})
	if listErr != nil {
		t.Fatalf("ListEvents: %v", listErr)
	}
	s := stored{byID: map[string]*webhookv1.Event{}, byDelivery: map[string]*webhookv1.Event{}}
	keys := map[string]string{}
	for _, l := range listed {
		resp, err := c.GetEvent(ctx, &webhookv1.GetEventRequest{Id: l.GetId()})
		if err != nil {
			t.Fatalf("GetEvent %s: %v", l.GetId(), err)
		}
		e := resp.GetEvent()
		id := header(e, eventHeader)
		d, ok := sent[id]
		switch {
		case s.byID[e.GetId()] != nil:
			t.Fatalf("event %s listed twice", e.GetId())
		case keys[e.GetDedupeKey()] != "":
			t.Fatalf("dedupe key %q stored twice (events %s and %s)", e.GetDedupeKey(), keys[e.GetDedupeKey()], e.GetId())
		case s.byDelivery[id] != nil:
			t.Fatalf("delivery %q stored twice (events %s and %s)", id, s.byDelivery[id].GetId(), e.GetId())
		case !ok:
			t.Fatalf("event %s: delivery id %q was never sent", e.GetId(), id)
		case !bytes.Equal(e.GetPayload(), d.body):
			t.Fatalf("event %s (delivery %s): stored payload of %d bytes differs from the %d bytes sent", e.GetId(), id, len(e.GetPayload()), len(d.body))
		case e.GetSource() != source:
			t.Fatalf("event %s: source %q, want %q", e.GetId(), e.GetSource(), source)
		}
		s.byID[e.GetId()] = e
		s.byDelivery[id] = e
		keys[e.GetDedupeKey()] = e.GetId()
	}
	return s
}

// checkAcked asserts that every acknowledged delivery is stored under the event id it was acknowledged
// with (storedEvents has checked that the event holds that delivery's exact body, once).
func checkAcked(t *testing.T, s stored, acks []acked) {
	t.Helper()
	for _, a := range acks {
		e := s.byID[a.eventID]
		switch {
		case e == nil:
			t.Fatalf("acknowledged event %s (delivery %s) is not stored", a.eventID, a.d.id)
		case header(e, eventHeader) != a.d.id:
			t.Fatalf("acknowledged event %s: stored for delivery %q, acknowledged for %q", a.eventID, header(e, eventHeader), a.d.id)
		}
	}
}

// header is the first value of the stored header name.
func header(e *webhookv1.Event, name string) string {
	for _, h := range e.GetHeaders() {
		if h.GetName() == name && len(h.GetValues()) > 0 {
			return h.GetValues()[0]
		}
	}
	return ""
}
