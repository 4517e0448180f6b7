package store_test

import (
	"reflect"
	"testing"

	"github.com/sergas/core/services/webhook/store"
)

// A cursor is handed on only from a settled event: a full page stops before its first unsettled event,
// and the last page is returned whole with no cursor.
func TestPageHandsOnOnlySettledCursors(t *testing.T) {
	ev := func(seq int64, settled bool) *store.Event {
		return &store.Event{Tx: 100 + seq, Seq: seq, Settled: settled}
	}
	after := store.Cursor{Tx: 7, Seq: 3}
	for name, c := range map[string]struct {
		in       []*store.Event
		wantLen  int
		wantNext store.Cursor
		wantMore bool
	}{
		"last page, unsettled included": {[]*store.Event{ev(1, true), ev(2, false)}, 2, store.Cursor{}, false},
		"full, all settled":             {[]*store.Event{ev(1, true), ev(2, true), ev(3, false)}, 2, store.Cursor{Tx: 102, Seq: 2}, true},
		"full, cut at unsettled":        {[]*store.Event{ev(1, true), ev(2, false), ev(3, true)}, 1, store.Cursor{Tx: 101, Seq: 1}, true},
		"full, none settled":            {[]*store.Event{ev(1, false), ev(2, false), ev(3, false)}, 0, after, true},
	} {
		page, next, more := store.Page(c.in, 2, after)
		if len(page) != c.wantLen || next != c.wantNext || more != c.wantMore || !reflect.DeepEqual(page, c.in[:c.wantLen]) {
			t.Errorf("%s: %d events, next %+v, more %v", name, len(page), next, more)
		}
	}
}
