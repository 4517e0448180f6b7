package webhook

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sergas/core/services/webhook/store"
)

// A Zoho CRM notification's module, operation, record ids, affected fields (either form Zoho sends) and
// server time are read; a field that is missing, of another type, over its bound or not storable text
// (NUL) is left empty and never fails the delivery.
func TestNormaliseZoho(t *testing.T) {
	n := normaliser{zoho: true}
	for name, c := range map[string]struct {
		body string
		want store.Normalised
	}{
		"update": {`{"server_time":1700000000123,"query_params":{},"module":"Deals","resource_uri":"https://www.zohoapis.eu/crm/v2/Deals",` +
			`"ids":["4150868000001",4150868000002],"affected_fields":["Stage","Amount","Stage"],"operation":"update","channel_id":"1","token":"t"}`,
			store.Normalised{Module: "Deals", Operation: "update", RecordIDs: []string{"4150868000001", "4150868000002"},
				AffectedFields: []string{"Stage", "Amount"}, ServerTime: time.UnixMilli(1700000000123).UTC()}},
		"fields per record": {`{"module":"Leads","operation":"update","ids":["2","1"],"affected_fields":[{"2":["Phone"]},{"1":["Email","Phone"]}],"server_time":"1700000000000"}`,
			store.Normalised{Module: "Leads", Operation: "update", RecordIDs: []string{"2", "1"}, AffectedFields: []string{"Phone", "Email"},
				ServerTime: time.UnixMilli(1700000000000).UTC()}},
		"delete, no fields": {`{"module":"Contacts","operation":"delete","ids":["9"]}`,
			store.Normalised{Module: "Contacts", Operation: "delete", RecordIDs: []string{"9"}}},
		"unstorable values": {`{"module":"De\u0000als","operation":"` + strings.Repeat("u", 300) + `","ids":["1\u0000",{"x":1},"2"],` +
			`"affected_fields":[["nested"],"Ok","\u0000"],"server_time":"17\u000000"}`,
			store.Normalised{RecordIDs: []string{"2"}, AffectedFields: []string{"Ok"}}},
		"wrong types": {`{"module":{"a":1},"operation":["update"],"ids":{"1":2},"affected_fields":"Stage","server_time":-5}`,
			store.Normalised{}},
		"one wrong type keeps the others": {`{"ids":{"1":2},"module":"Deals","operation":"insert"}`,
			store.Normalised{Module: "Deals", Operation: "insert"}},
		"not an object": {`[1,2]`, store.Normalised{}},
		"not JSON":      {`module=Deals`, store.Normalised{}},
	} {
		if got := n.normalise([]byte(c.body)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v\nwant %+v", name, got, c.want)
		}
	}
	if got := (normaliser{}).normalise([]byte(`{"module":"Deals"}`)); !reflect.DeepEqual(got, store.Normalised{}) {
		t.Errorf("a source of another scheme read a module: %+v", got)
	}
}

// Event type pointers follow RFC 6901 (its section 5 examples), and only strings and numbers are types.
func TestEventTypePointer(t *testing.T) {
	doc := `{"foo":["bar","baz"],"":0,"a/b":1,"c%d":2,"e^f":3,"g|h":4,"i\\j":5,"k\"l":6," ":7,"m~n":8,` +
		`"data":{"object":{"type":"invoice.paid"}},"t":true,"nul":"a\u0000b"}`
	for ptr, want := range map[string]string{
		"/foo/0": "bar", "/": "0", "/a~1b": "1", "/c%d": "2", "/e^f": "3", "/g|h": "4", "/i\\j": "5", `/k"l`: "6",
		"/ ": "7", "/m~0n": "8", "/data/object/type": "invoice.paid",
		"/foo": "", "/foo/2": "", "/foo/01": "", "/foo/-": "", "/missing": "", "/data/object/type/x": "", "/t": "", "/nul": "",
	} {
		tokens, err := parsePointer(ptr)
		if err != nil {
			t.Fatalf("%q: %v", ptr, err)
		}
		if got := (normaliser{eventType: tokens}).normalise([]byte(doc)).EventType; got != want {
			t.Errorf("%q: %q, want %q", ptr, got, want)
		}
	}
	for _, bad := range []string{"", "type", "/a~", "/a~2", "#/type"} {
		if _, err := parsePointer(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := (normaliser{eventType: []string{"type"}}).normalise([]byte(`not json`)).EventType; got != "" {
		t.Errorf("not JSON: %q", got)
	}
}

// A body normalises in microseconds: it is read once per stored delivery, on the ingest path.
func BenchmarkNormaliseZoho(b *testing.B) {
	body := []byte(zohoBody(1000000068001, "tok-1", 1700000000000, "4150868000001") + strings.Repeat(" ", 700))
	n := normaliser{zoho: true}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		n.normalise(body)
	}
}

// Whatever the body and pointer, normalisation never panics and yields only text both backends store
// alike, within its bounds (so that storing it can never fail where the delivery verified).
func FuzzNormalise(f *testing.F) {
	f.Add([]byte(zohoBody(1000000068001, "tok-1", 1700000000000, "1", "2")), "/type")
	f.Add([]byte(`{"module":"De\u0000als","affected_fields":[{"1":["a","\u0000"]}],"ids":[1e400]}`), "/a~1b/0")
	f.Add([]byte(`{"type":{"x":["\ud800"]}}`), "/type/x/0")
	f.Add([]byte(`[[[[["deep"]]]]]`), "/0/0/0/0/0")
	f.Fuzz(func(t *testing.T, body []byte, ptr string) {
		n := normaliser{zoho: true}
		if tokens, err := parsePointer(ptr); err == nil {
			n.eventType = tokens
		}
		out := n.normalise(body)
		texts := append([]string{out.Module, out.Operation, out.EventType}, out.RecordIDs...)
		texts = append(texts, out.AffectedFields...)
		for _, s := range texts {
			if len(s) > maxNormalisedText || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("unstorable value %q from %q", s, body)
			}
		}
		if len(out.RecordIDs) > maxNormalisedList || len(out.AffectedFields) > maxNormalisedList {
			t.Fatalf("lists over their bound: %d, %d", len(out.RecordIDs), len(out.AffectedFields))
		}
		if !out.ServerTime.IsZero() && (out.ServerTime.Year() < 1970 || out.ServerTime.Year() > 9999) {
			t.Fatalf("server time %v", out.ServerTime)
		}
	})
}
