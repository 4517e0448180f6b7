package audit

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestResponseMetadataIsTheDecodedText: for random metadata (every value kind, nesting, secret keys,
// numbers of every magnitude and sign), encodeMetadata answers with the Struct decodeMetadata makes of the text
// canonicalJSON stores, byte for byte, with and without redaction.
func TestResponseMetadataIsTheDecodedText(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "stage", "password", "X-Api-Key", "input_tokens", "ключ", "", "<&>", "refreshToken", "n"}
	var value func(depth int) *structpb.Value
	object := func(depth int) *structpb.Struct {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for range rng.IntN(5) {
			s.Fields[keys[rng.IntN(len(keys))]] = value(depth + 1)
		}
		return s
	}
	value = func(depth int) *structpb.Value {
		k := rng.IntN(9)
		if depth > 6 {
			k %= 5
		}
		switch k {
		case 0:
			return structpb.NewNumberValue(math.Float64frombits(rng.Uint64()&^(0x7ff<<52) | uint64(rng.IntN(0x7ff))<<52)) // finite
		case 1:
			return structpb.NewNumberValue(float64(rng.IntN(1<<20)) - 1<<19)
		case 2:
			return structpb.NewStringValue(string([]rune{rune(rng.IntN(0xd7ff) + 1), '\u2028', rune(rng.IntN(128) + 1)}))
		case 3:
			return structpb.NewBoolValue(rng.IntN(2) == 0)
		case 4:
			if rng.IntN(2) == 0 {
				return &structpb.Value{}
			}
			return structpb.NewNullValue()
		case 5, 6:
			return structpb.NewStructValue(object(depth))
		default:
			l := &structpb.ListValue{}
			for range rng.IntN(4) {
				l.Values = append(l.Values, value(depth+1))
			}
			return structpb.NewListValue(l)
		}
	}
	det := proto.MarshalOptions{Deterministic: true}
	for _, r := range []*redactor{newRedactor(DefaultRedactKeys), newRedactor(nil)} {
		for i := range 2000 {
			m := object(1)
			if i == 0 {
				m = nil
			}
			text, got, err := encodeMetadata(m, r)
			if err != nil {
				t.Fatalf("%v: %v", m, err)
			}
			want, ok := decodeMetadata(text)
			if !ok {
				t.Fatalf("%s does not decode", text)
			}
			wb, _ := det.Marshal(want)
			gb, _ := det.Marshal(got)
			if !proto.Equal(got, want) || !bytes.Equal(gb, wb) {
				t.Fatalf("metadata %v (stored %s):\nanswer %v\ndecoded %v", m, text, got, want)
			}
		}
	}
}

// benchMetadata is the benchmark's event metadata (tools/bench/internal/auditload).
func benchMetadata(b *testing.B) *structpb.Struct {
	m, err := structpb.NewStruct(map[string]any{
		"tool": "zoho.crm.update_record", "module": "Deals", "fields": []any{"Stage", "Amount"},
		"amount": 12500, "access_token": "1000.bench.not-a-real-token",
	})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkAnswerMetadata compares decoding the stored text (what building the answer cost before)
// with encodeMetadata, which now makes both the stored text and the answer in one redacting copy.
func BenchmarkAnswerMetadata(b *testing.B) {
	m, r := benchMetadata(b), newRedactor(DefaultRedactKeys)
	text, err := canonicalJSON(m, r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeMetadata(text); !ok {
				b.Fatal(text)
			}
		}
	})
	b.Run("encode-and-answer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := encodeMetadata(m, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
