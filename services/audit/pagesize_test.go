package audit

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sergas/core/services/audit/store"
)

// boundEvent is an event with every text field set to text and the given metadata.
func boundEvent(text, metadata string) *store.Event {
	return &store.Event{Sequence: 1<<63 - 1, ID: text, OccurTime: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		RecordTime: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Actor: text, Action: text, Resource: text, Outcome: 1 << 30,
		Metadata: metadata, IdempotencyKey: text, Principal: text, ActorType: 1 << 30, SessionID: text, RequestID: text,
		SourceService: text, HashVersion: 1 << 30, PreviousHash: []byte(text), Hash: []byte(text)}
}

func checkSizeBound(t *testing.T, e *store.Event) {
	t.Helper()
	if got, bound := proto.Size(toProto(e)), sizeBound(e); got > bound {
		t.Fatalf("encoded %d bytes > bound %d (text %q…, metadata %q…)", got, bound, trim(e.Actor), trim(e.Metadata))
	}
}

func trim(s string) string { return s[:min(len(s), 40)] }

var sizeBoundMetadata = []string{
	``, `{}`, `not json`, "\xff\xfe{}", `{"n":[` + strings.Repeat(`0,`, 30000) + `0]}`,
	`{"a":` + strings.Repeat(`[`, 63) + strings.Repeat(`]`, 63) + `}`,
	`{"a":` + strings.Repeat(`{"b":`, 62) + `{}` + strings.Repeat(`}`, 62) + `}`,
	`{"k":[` + strings.Repeat(`true,null,{},[],"",`, 2000) + `0]}`,
	`{` + strings.Repeat(`"":0,`, 1) + `"x":"` + strings.Repeat("\xff", 100) + `"}`,
	`{"access_token":"[REDACTED]","amount":12500,"fields":["Stage","Amount"],"module":"Deals","sergas.redacted":true}`,
}

// TestSizeBoundIsAnUpperBound: the bound a page is filled by is never below an event's encoded size,
// for the documents that grow most as protobuf and for text that is not UTF-8.
func TestSizeBoundIsAnUpperBound(t *testing.T) {
	for _, text := range []string{"", "a", strings.Repeat("\xff", 300), strings.Repeat("é", 5000)} {
		for _, m := range sizeBoundMetadata {
			checkSizeBound(t, boundEvent(text, m))
		}
	}
}

func FuzzSizeBound(f *testing.F) {
	for _, m := range sizeBoundMetadata {
		f.Add("x", m)
	}
	f.Fuzz(func(t *testing.T, text, metadata string) { checkSizeBound(t, boundEvent(text, metadata)) })
}
