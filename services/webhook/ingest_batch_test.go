package webhook

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/logging"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// TestIngestBatchAnswersEachDelivery: every item of IngestBatch is handled as an Ingest call of its own
// (verification, source, body limit, deduplication, the sender the gateway proves) and answered on its
// own, in order; a refused item loses nothing of the others.
func TestIngestBatchAnswersEachDelivery(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h, _ := startWithSources(t, d, map[string]string{})
		key, _ := hex.DecodeString(testAddrSecret)
		proven := func(req *webhookv1.IngestRequest, addr string) *webhookv1.IngestBatchItem {
			return &webhookv1.IngestBatchItem{Request: req, ClientIp: addr, ClientIpProof: clientaddr.Proof(key, addr, time.Now())}
		}
		body := `{"n":1}`
		good := signed("github", body, "X-Hub-Signature-256", githubSig(hmacSecretNew, body), "X-GitHub-Delivery", "d-1")
		items := []*webhookv1.IngestBatchItem{
			proven(good, "198.51.100.7"),
			proven(signed("github", body, "X-Hub-Signature-256", githubSig("forged-secret-0123456789", body), "X-GitHub-Delivery", "d-2"), "198.51.100.8"),
			proven(good, "198.51.100.9"), // the same delivery again, in the same call
			proven(&webhookv1.IngestRequest{Source: "nope", Body: []byte(body)}, "198.51.100.7"),
			proven(&webhookv1.IngestRequest{Source: "small", Body: []byte(strings.Repeat("x", 17))}, "198.51.100.7"),
			{Request: &webhookv1.IngestRequest{Source: "small", Body: []byte("unproven")}, ClientIp: "203.0.113.66"},
		}
		resp, err := h.client.IngestBatch(t.Context(), &webhookv1.IngestBatchRequest{Items: items})
		if err != nil {
			t.Fatal(err)
		}
		rs := resp.GetResults()
		if len(rs) != len(items) {
			t.Fatalf("%d results for %d items", len(rs), len(items))
		}
		first, again := rs[0].GetResponse(), rs[2].GetResponse()
		if first == nil || again == nil || first.GetEventId() != again.GetEventId() || first.GetDuplicate() == again.GetDuplicate() {
			t.Fatalf("the delivery sent twice: %v and %v, want one stored and one duplicate of it", rs[0], rs[2])
		}
		stored, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: first.GetEventId()})
		if err != nil {
			t.Fatal(err)
		}
		if a := stored.GetEvent().GetSenderAddress(); !slices.Contains([]string{"198.51.100.7", "198.51.100.9"}, a) {
			t.Errorf("sender %q, want the proven address of one of the two items", a)
		}
		for i, want := range map[int]struct {
			code   codes.Code
			reason string
		}{1: {codes.Unauthenticated, ErrorUnverified}, 3: {codes.NotFound, ""}, 4: {codes.ResourceExhausted, ErrorBodyTooLarge}} {
			if rs[i].GetResponse() != nil {
				t.Fatalf("item %d stored: %v", i, rs[i])
			}
			var st spb.Status
			if err := proto.Unmarshal(rs[i].GetErrorStatus(), &st); err != nil {
				t.Fatalf("item %d: %v", i, err)
			}
			s := status.FromProto(&st)
			reason := ""
			for _, d := range s.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					reason = ei.GetReason()
				}
			}
			if s.Code() != want.code || reason != want.reason {
				t.Errorf("item %d: %v (reason %q), want %v (reason %q)", i, s.Code(), reason, want.code, want.reason)
			}
		}
		unproven := rs[5].GetResponse()
		if unproven == nil {
			t.Fatalf("unproven item: %v", rs[5])
		}
		ev, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: unproven.GetEventId()})
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetEvent().GetSenderAddress(); a != "127.0.0.1" {
			t.Errorf("an item's address without a proof was believed: sender %q, want the connection's 127.0.0.1", a)
		}
	})
}

// TestIngestBatchRefusesMalformedCalls: an empty call, one over the item bound, or an item without a
// request is refused whole with InvalidArgument, and nothing of it is stored.
func TestIngestBatchRefusesMalformedCalls(t *testing.T) {
	h := startService(t, db.SQLite, map[string]string{})
	one := &webhookv1.IngestBatchItem{Request: delivery(`{"a":1}`)}
	tooMany := make([]*webhookv1.IngestBatchItem, maxBatchItems+1)
	for i := range tooMany {
		tooMany[i] = one
	}
	for name, items := range map[string][]*webhookv1.IngestBatchItem{
		"empty":      nil,
		"too many":   tooMany,
		"no request": {one, {ClientIp: "198.51.100.7"}},
	} {
		_, err := h.client.IngestBatch(t.Context(), &webhookv1.IngestBatchRequest{Items: items})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	list, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{})
	if err != nil || len(list.GetEvents()) != 0 {
		t.Fatalf("stored from refused calls: %v %v", list.GetEvents(), err)
	}
}

// TestIngestBatchItemKeepsItsTrace: an item's work is logged under the trace of its own HTTP request (the
// item's traceparent), not the batch call's, so that the trace id a sender was answered with finds it.
func TestIngestBatchItemKeepsItsTrace(t *testing.T) {
	var buf testutil.LogBuffer
	h, _ := startWithSources(t, db.SQLite, map[string]string{}, WithLogger(logging.New(logging.Config{Format: "json"}, &buf)))
	body := `{"n":2}`
	forged := signed("github", body, "X-Hub-Signature-256", githubSig("forged-secret-0123456789", body), "X-GitHub-Delivery", "d-9")
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, err := h.client.IngestBatch(t.Context(), &webhookv1.IngestBatchRequest{Items: []*webhookv1.IngestBatchItem{{Request: forged, Traceparent: tp}}})
	if err != nil || len(resp.GetResults()) != 1 || len(resp.GetResults()[0].GetErrorStatus()) == 0 {
		t.Fatalf("forged item: %v %v", resp, err)
	}
	testutil.Eventually(t, 5*time.Second, "the refusal line under the item's trace", func() bool {
		return strings.Contains(buf.String(), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`)
	})
}

// faultyStore fails (or panics on) the insert of deliveries whose body says so.
type faultyStore struct{ store.Store }

func (f faultyStore) EventInsert(ctx context.Context, e *store.Event) (*store.Event, bool, error) {
	switch string(e.Payload) {
	case "panic":
		panic("a bug in the store")
	case "down":
		return nil, false, errs.Wrap(errs.KindUnavailable, errors.New("connection refused to /var/run/secret.sock"), "database unavailable")
	}
	return f.Store.EventInsert(ctx, e)
}

// TestIngestBatchItemFailures: a panic while handling one item fails that item alone (INTERNAL, the
// process goes on); an item the store cannot take is answered UNAVAILABLE without the cause; and when
// every item fails for the service's own reason the whole call fails with it, so that health tracking,
// metrics and the gateway see it as a failed Ingest.
func TestIngestBatchItemFailures(t *testing.T) {
	h := startServiceOn(t, faultyStore{newStore(t, db.SQLite)}, map[string]string{})
	item := func(body string) *webhookv1.IngestBatchItem {
		return &webhookv1.IngestBatchItem{Request: delivery(body)}
	}
	resp, err := h.client.IngestBatch(t.Context(), &webhookv1.IngestBatchRequest{Items: []*webhookv1.IngestBatchItem{item("panic"), item("down"), item(`{"ok":1}`)}})
	if err != nil || len(resp.GetResults()) != 3 {
		t.Fatalf("mixed call: %v %v", resp, err)
	}
	for i, want := range []codes.Code{codes.Internal, codes.Unavailable} {
		var st spb.Status
		if err := proto.Unmarshal(resp.GetResults()[i].GetErrorStatus(), &st); err != nil || codes.Code(st.GetCode()) != want ||
			strings.Contains(st.GetMessage(), "secret") || strings.Contains(st.GetMessage(), "panic") {
			t.Errorf("item %d: %v (%v), want %v without the cause", i, &st, err, want)
		}
	}
	if resp.GetResults()[2].GetResponse() == nil {
		t.Fatalf("the good item was not stored: %v", resp.GetResults()[2])
	}
	_, err = h.client.IngestBatch(t.Context(), &webhookv1.IngestBatchRequest{Items: []*webhookv1.IngestBatchItem{item("down"), item("down")}})
	if status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "secret") {
		t.Fatalf("every item failing for the store: %v, want the call to fail UNAVAILABLE without the cause", err)
	}
}
