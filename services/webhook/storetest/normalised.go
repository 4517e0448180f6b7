package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sergas/core/services/webhook/store"
)

// testNormalised stores the normalised fields beside the raw bytes and reads them back alike from
// EventGet and EventList; an event without them reads back empty (nil lists, zero server time).
func testNormalised(t *testing.T, s store.Store) {
	ctx := context.Background()
	raw := []byte(`{"module":"Deals","ids":["1","2"]}`)
	e := event("zoho", "n1", raw)
	e.Normalised = store.Normalised{Module: "Deals", Operation: "update", RecordIDs: []string{"1", "2"},
		AffectedFields: []string{"Stage", "Ämount"}, ServerTime: time.UnixMilli(1700000000123).UTC(), EventType: "x.y"}
	stored, _, err := s.EventInsert(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.EventGet(ctx, e.ID)
	if err != nil || !reflect.DeepEqual(got, stored) || !reflect.DeepEqual(got.Normalised, e.Normalised) || string(got.Payload) != string(raw) {
		t.Fatalf("get: %+v %v\nwant %+v", got, err, stored)
	}
	plain := event("github", "n2", []byte("{}"))
	if _, _, err := s.EventInsert(ctx, plain); err != nil {
		t.Fatal(err)
	}
	list, err := s.EventList(ctx, store.EventListParams{Limit: 10})
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if !reflect.DeepEqual(list[0].Normalised, e.Normalised) || !reflect.DeepEqual(list[1].Normalised, store.Normalised{}) {
		t.Fatalf("listed normalised fields: %+v / %+v", list[0].Normalised, list[1].Normalised)
	}
}
