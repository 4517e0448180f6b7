package webhook

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// The push body is the JSON protojson makes of the Event (EmitUnpopulated), value for value: same names,
// same values, nothing more or less (protojson's spacing is not stable, so the JSON is compared parsed).
func TestPushBodyIsTheEventsProtoJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 20, 30, 0, time.UTC)
	full := &webhookv1.Event{
		Id: "0193f1c2-7d3e-7a4b-8c5d-6e7f8091a2b3", Source: "zoho", DedupeKey: "chan-1:42", Status: webhookv1.EventStatus_EVENT_STATUS_PENDING,
		ContentType: "application/json", Payload: []byte(`{"ids":["1"],"token":"••••"}` + "\x00\xff<>&"),
		Headers: []*webhookv1.Header{{Name: "Content-Type", Values: []string{"application/json"}}, {Name: "X-Multi", Values: []string{"a", "b"}},
			{Name: "X-None"}},
		ReceiveTime: timestamppb.New(at.Add(123456789)), UpdateTime: timestamppb.New(at.Add(time.Millisecond)), AttemptCount: 3,
		SenderAddress: "2001:db8::7", Module: "Deals", Operation: "update", RecordIds: []string{"4150868000000123"},
		AffectedFields: []string{"Stage", "Ünïcødé \u2028 \"quoted\" \\ <tag> &"}, ServerTime: timestamppb.New(at.Add(5 * time.Microsecond)),
		EventType: "",
	}
	cases := map[string]*webhookv1.Event{
		"full":           full,
		"empty":          {Id: "x", ReceiveTime: timestamppb.New(at), UpdateTime: timestamppb.New(at)},
		"no times":       {Id: "x"},
		"status":         {Status: webhookv1.EventStatus_EVENT_STATUS_DEAD_LETTER, EventType: "invoice.paid", ReceiveTime: timestamppb.New(time.Unix(0, 1)), UpdateTime: timestamppb.New(at)},
		"unnamed status": {Status: webhookv1.EventStatus(42), ReceiveTime: timestamppb.New(at), UpdateTime: timestamppb.New(at)},
		"year 10000":     {ReceiveTime: timestamppb.New(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), UpdateTime: timestamppb.New(at)},
	}
	for name, ev := range cases {
		samePushJSON(t, name, ev)
	}
}

func FuzzPushBody(f *testing.F) {
	f.Add("id", "zoho", "k", []byte(`{"a":1}`), "X-A", "v", "Deals", "2001:db8::1", int64(1_800_000_000_123_456_789), int32(1), true)
	f.Add("", "", "", []byte{}, "", "", "", "", int64(0), int32(0), false)
	f.Add("\u2028<>&\"\\", "\x7f", "\t\n", []byte{0, 0xff}, "a", "\x01", "é", "", int64(-1), int32(-5), true)
	f.Fuzz(func(t *testing.T, id, source, key string, payload []byte, hname, hvalue, module, addr string, ns int64, status int32, server bool) {
		ev := &webhookv1.Event{Id: id, Source: source, DedupeKey: key, Payload: payload, Status: webhookv1.EventStatus(status),
			Headers: []*webhookv1.Header{{Name: hname, Values: []string{hvalue, hname}}}, Module: module, SenderAddress: addr,
			ReceiveTime: timestamppb.New(time.Unix(0, ns)), UpdateTime: timestamppb.New(time.Unix(0, ns/1000*1000)),
			RecordIds: []string{module}, EventType: hvalue}
		if server {
			ev.ServerTime = timestamppb.New(time.Unix(0, ns/1e6*1e6))
		}
		samePushJSON(t, "fuzz", ev)
	})
}

func samePushJSON(t *testing.T, name string, ev *webhookv1.Event) {
	t.Helper()
	want, werr := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(ev)
	got, gerr := pushBody(ev)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s: protojson error %v, pushBody error %v", name, werr, gerr)
	}
	if werr != nil {
		return
	}
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: pushBody is not JSON: %v\n%s", name, err, got)
	}
	if !reflect.DeepEqual(w, g) {
		t.Errorf("%s: pushBody differs from protojson\nprotojson: %s\npushBody:  %s", name, want, got)
	}
}

func BenchmarkPushBody(b *testing.B) {
	ev := &webhookv1.Event{Id: "0193f1c2-7d3e-7a4b-8c5d-6e7f8091a2b3", Source: "hmac", DedupeKey: "k", Payload: make([]byte, 1024),
		Headers:     []*webhookv1.Header{{Name: "Content-Type", Values: []string{"application/json"}}, {Name: "X-Request-Id", Values: []string{"abc"}}},
		ReceiveTime: timestamppb.Now(), UpdateTime: timestamppb.Now(), SenderAddress: "127.0.0.1"}
	b.Run("protojson", func(b *testing.B) {
		for b.Loop() {
			_, _ = protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(ev)
		}
	})
	b.Run("pushBody", func(b *testing.B) {
		for b.Loop() {
			_, _ = pushBody(ev)
		}
	})
}
