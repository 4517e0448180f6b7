package audit_test

import (
	"bytes"
	"context"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/dbtest"
)

// answerMetadata is metadata whose every kind of value must come back in RecordEvent's answer exactly as
// GetEvent shows the stored event: numbers at the edges of float64, text JSON escapes, nested arrays and
// objects, nulls (set and unset), empty containers and secrets to redact at any depth.
func answerMetadata() []*structpb.Struct {
	num := structpb.NewNumberValue
	str := structpb.NewStringValue
	list := func(vs ...*structpb.Value) *structpb.Value {
		return structpb.NewListValue(&structpb.ListValue{Values: vs})
	}
	obj := func(kv ...any) *structpb.Value {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for i := 0; i < len(kv); i += 2 {
			s.Fields[kv[i].(string)] = kv[i+1].(*structpb.Value)
		}
		return structpb.NewStructValue(s)
	}
	withUnknown := &structpb.Struct{Fields: map[string]*structpb.Value{"a": num(1)}}
	// A field this version does not know, as a newer client might send: never echoed.
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	return []*structpb.Struct{
		nil,
		{},
		{Fields: map[string]*structpb.Value{
			"int": num(42), "neg": num(-7), "big": num(1 << 53), "bigger": num(1<<53 + 2), "tenth": num(0.1),
			"third": num(1.0 / 3), "max": num(math.MaxFloat64), "tiny": num(5e-324), "negzero": num(math.Copysign(0, -1)),
			"zero": num(0), "e": num(1e21), "small": num(1e-7),
		}},
		{Fields: map[string]*structpb.Value{
			"accents": str("Ünïcödé façade"), "emoji": str("🦀 \U0001F600"), "cjk": str("監査ログ"),
			"html": str("<b>&amp;</b>"), "separators": str("a\u2028b\u2029c"), "escapes": str("tab\tquote\"back\\slash\nnl\x01"),
			"ключ": str("значение"), "": str("empty key"), "bool": structpb.NewBoolValue(false),
			"null": structpb.NewNullValue(), "unset": {},
		}},
		{Fields: map[string]*structpb.Value{
			"matrix": list(list(num(1), num(2)), list(), list(list(str("deep"), structpb.NewNullValue(), &structpb.Value{}))),
			"steps":  list(obj("tool", str("zoho"), "args", obj("ids", list(num(1), num(2.5)))), obj()),
			"empty":  obj(),
		}},
		{Fields: map[string]*structpb.Value{
			"password": num(3), "stage": str("Won"),
			"request":      obj("headers", obj("X-Api-Key", str("k"), "Accept", str("*/*"))),
			"steps":        list(obj("refreshToken", list(str("a"))), list(obj("Cookie", obj("sid", str("x"))))),
			"input_tokens": num(120),
		}},
		withUnknown,
	}
}

// TestRecordEventAnswersWhatGetEventReturns: RecordEvent's event (new and duplicate) is GetEvent's for the
// same event, proto.Equal and byte for byte, for every kind of metadata, on both backends. RecordEvent
// builds its answer's metadata from the request instead of decoding the stored text; GetEvent decodes it.
func TestRecordEventAnswersWhatGetEventReturns(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			client := serveAudit(t, d, nil)
			ctx := context.Background()
			det := proto.MarshalOptions{Deterministic: true}
			for i, m := range answerMetadata() {
				req := &auditv1.RecordEventRequest{Actor: "agent-7", Action: "crm.update", Outcome: auditv1.Outcome_OUTCOME_SUCCESS,
					Metadata: m, IdempotencyKey: string(rune('a' + i))}
				rec, err := client.RecordEvent(ctx, req)
				if err != nil {
					t.Fatalf("metadata %d: %v", i, err)
				}
				dup, err := client.RecordEvent(ctx, req)
				if err != nil || !dup.GetDuplicate() {
					t.Fatalf("metadata %d: retry %v %v", i, dup, err)
				}
				got, err := client.GetEvent(ctx, &auditv1.GetEventRequest{Id: rec.GetEvent().GetId()})
				if err != nil {
					t.Fatal(err)
				}
				want, err := det.Marshal(got.GetEvent())
				if err != nil {
					t.Fatal(err)
				}
				for _, answer := range []*auditv1.Event{rec.GetEvent(), dup.GetEvent()} {
					b, err := det.Marshal(answer)
					if err != nil {
						t.Fatal(err)
					}
					if !proto.Equal(answer, got.GetEvent()) || !bytes.Equal(b, want) {
						t.Errorf("metadata %d: RecordEvent answered\n%v\nGetEvent returns\n%v", i, answer, got.GetEvent())
					}
				}
				// The same event in a batch (a duplicate of the first) and a new one beside it answer as
				// GetEvent does too.
				fresh := proto.Clone(req).(*auditv1.RecordEventRequest)
				fresh.IdempotencyKey = "batch-" + req.IdempotencyKey
				batch, err := client.RecordEvents(ctx, &auditv1.RecordEventsRequest{Events: []*auditv1.RecordEventRequest{req, fresh}})
				if err != nil {
					t.Fatalf("metadata %d: batch %v", i, err)
				}
				for j, r := range batch.GetResults() {
					g, err := client.GetEvent(ctx, &auditv1.GetEventRequest{Id: r.GetEvent().GetId()})
					if err != nil {
						t.Fatal(err)
					}
					if !proto.Equal(r.GetEvent(), g.GetEvent()) {
						t.Errorf("metadata %d: RecordEvents result %d answered\n%v\nGetEvent returns\n%v", i, j, r.GetEvent(), g.GetEvent())
					}
				}
				if wantRedacted := i == 5; got.GetEvent().GetRedacted() != wantRedacted {
					t.Errorf("metadata %d: redacted %v", i, got.GetEvent().GetRedacted())
				}
			}
		})
	}
}
