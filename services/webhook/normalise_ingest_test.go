package webhook

import (
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/storetest"
)

const normaliseSources = `{"sources": [
  {"name": "zoho", "scheme": "zoho-crm", "zoho_crm": {"channels": {"1000000068001": "tok-1"}}},
  {"name": "stripe", "scheme": "none", "event_type_pointer": "/type"},
  {"name": "nested", "scheme": "none", "event_type_pointer": "/data/a~1b/0"}
]}`

// Ingest stores what a delivery is about beside its exact bytes: a Zoho CRM notification's module,
// operation, record ids, affected fields and server time, another source's event type at its pointer.
// ListEvents filters by them, alone and together, on both backends; a value PostgreSQL could not store
// (NUL) is left out alike on both, and a filter holding one is refused (400) on both.
func TestIngestNormalisesAndListFilters(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		path := filepath.Join(t.TempDir(), "sources.json")
		writeFile(t, path, normaliseSources)
		h := startServiceOn(t, newStore(t, d), map[string]string{"WEBHOOK_SOURCES_FILE": path, "WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0"})
		// An event no subscription wants is stored as delivered: this one wants all, so the status filter
		// below finds them pending.
		storetest.WantEverything(t, h.srv.store)
		ingest := func(source, body string) string {
			t.Helper()
			resp, err := h.client.Ingest(t.Context(), &webhookv1.IngestRequest{Source: source, Body: []byte(body)})
			if err != nil {
				t.Fatalf("ingest %s: %v", source, err)
			}
			return resp.GetEventId()
		}
		zoho := func(module, op, ids, fields string, serverTime int64) string {
			return `{"server_time":` + strconv.FormatInt(serverTime, 10) + `,"query_params":{},"module":` + module +
				`,"resource_uri":"https://www.zohoapis.eu/crm/v2/Deals","ids":` + ids + `,"affected_fields":` + fields +
				`,"operation":` + op + `,"channel_id":"1000000068001","token":"tok-1"}`
		}
		dealsUpdate := zoho(`"Deals"`, `"update"`, `["4150868000001",4150868000002]`, `[{"4150868000001":["Stage","Amount"]},{"4150868000002":["Stage"]}]`, 1700000000123)
		idUpdate := ingest("zoho", dealsUpdate)
		idInsert := ingest("zoho", zoho(`"Deals"`, `"insert"`, `["4150868000003"]`, `[]`, 1700000000200))
		idLeads := ingest("zoho", zoho(`"Leads"`, `"update"`, `["1"]`, `["Phone"]`, 1700000000300))
		idNul := ingest("zoho", zoho(`"De\u0000als"`, `"update"`, `["1\u0000"]`, `["\u0000"]`, 1700000000400))
		idPaid := ingest("stripe", `{"type":"invoice.paid","id":"evt_1"}`)
		idNoType := ingest("stripe", `{"id":"evt_2"}`)
		idNested := ingest("nested", `{"data":{"a/b":["push"]}}`)

		got, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: idUpdate})
		if err != nil {
			t.Fatal(err)
		}
		e := got.GetEvent()
		// The body as received, except the channel token, which reads never show (tokenmask.go).
		if string(e.GetPayload()) != string(maskChannelToken([]byte(dealsUpdate))) || e.GetModule() != "Deals" || e.GetOperation() != "update" ||
			!reflect.DeepEqual(e.GetRecordIds(), []string{"4150868000001", "4150868000002"}) ||
			!reflect.DeepEqual(e.GetAffectedFields(), []string{"Stage", "Amount"}) ||
			!e.GetServerTime().AsTime().Equal(time.UnixMilli(1700000000123)) || e.GetEventType() != "" {
			t.Fatalf("normalised Zoho event: %v", e)
		}
		got, err = h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: idNul})
		if e := got.GetEvent(); err != nil || e.GetModule() != "" || e.GetOperation() != "update" || len(e.GetRecordIds()) != 0 || len(e.GetAffectedFields()) != 0 {
			t.Fatalf("unstorable values: %v %v", e, err)
		}

		list := func(req *webhookv1.ListEventsRequest) []string {
			t.Helper()
			resp, err := h.client.ListEvents(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range resp.GetEvents() {
				ids = append(ids, e.GetId())
			}
			return ids
		}
		for name, c := range map[string]struct {
			req  *webhookv1.ListEventsRequest
			want []string
		}{
			"module":           {&webhookv1.ListEventsRequest{Module: "Deals"}, []string{idUpdate, idInsert}},
			"operation":        {&webhookv1.ListEventsRequest{Operation: "update"}, []string{idUpdate, idLeads, idNul}},
			"module+operation": {&webhookv1.ListEventsRequest{Module: "Deals", Operation: "update"}, []string{idUpdate}},
			"module+source":    {&webhookv1.ListEventsRequest{Module: "Leads", Source: "zoho", Status: webhookv1.EventStatus_EVENT_STATUS_PENDING}, []string{idLeads}},
			"event type":       {&webhookv1.ListEventsRequest{EventType: "invoice.paid"}, []string{idPaid}},
			"nested pointer":   {&webhookv1.ListEventsRequest{EventType: "push"}, []string{idNested}},
			"case-sensitive":   {&webhookv1.ListEventsRequest{Module: "deals"}, nil},
			"no filter":        {&webhookv1.ListEventsRequest{}, []string{idUpdate, idInsert, idLeads, idNul, idPaid, idNoType, idNested}},
		} {
			if got := list(c.req); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: listed %v\nwant %v", name, got, c.want)
			}
		}
		// (Invalid UTF-8 never arrives: protobuf refuses it in a string field.)
		for _, req := range []*webhookv1.ListEventsRequest{{Module: "De\x00als"}, {Operation: "up\x00"}, {EventType: "\x00"},
			{EventType: strings.Repeat("t", 300)}} {
			if _, err := h.client.ListEvents(t.Context(), req); status.Code(err) != codes.InvalidArgument {
				t.Errorf("ListEvents %v: %v, want InvalidArgument", req, err)
			}
		}
	})
}

// A source whose event_type_pointer is not an RFC 6901 pointer stops the configuration, naming it.
func TestEventTypePointerConfigRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sources.json")
	writeFile(t, path, `{"sources": [{"name": "s", "scheme": "none", "event_type_pointer": "type"}]}`)
	e := config.FromMap(map[string]string{"WEBHOOK_SOURCES_FILE": path, "CLIENT_ADDR_SECRET": testAddrSecret})
	LoadConfig(e)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "event_type_pointer") {
		t.Fatalf("bad pointer: %v", err)
	}
}
