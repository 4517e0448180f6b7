package postgres

import (
	"time"

	"slices"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/storetest"
)

// ChannelsDue reads the partial channels_due index in expiry order, and every ChannelList filter reads
// channels in id order (the primary key, or an index ending in id): no sort of every channel, so a renewal
// pass and a page cost their own rows. Sequential scans are off so that the small test table shows the
// plan of a large one.
func TestChannelPlansUseIndexes(t *testing.T) {
	s := New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	storetest.FillChannels(t, s, 200)
	plan := explain(t, s, store.ChannelsDueQuery(channelSelect), []any{storetest.ChannelsDueAt, time.Time{}, "", 10})
	if !strings.Contains(plan, "Index Scan using channels_due ") || strings.Contains(plan, "Sort") {
		t.Errorf("ChannelsDue does not read channels_due in order:\n%s", plan)
	}
	for name, p := range storetest.ChannelListShapes {
		q, args := store.ChannelListQuery(channelSelect, p)
		plan := explain(t, s, q, args)
		want := "Index Scan using channels_pkey "
		switch {
		case p.Source != "" && p.State != 0:
			want = "Index Scan using channels_source_id |Index Scan using channels_state_id "
		case p.State != 0:
			want = "Index Scan using channels_state_id "
		case p.Source != "":
			want = "Index Scan using channels_source_id "
		}
		if !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(plan, w) }) || strings.Contains(plan, "Sort") {
			t.Errorf("list %s: plan does not read %q in id order:\n%s", name, want, plan)
		}
	}
}
