package sqlite

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
// channels in id order (the table itself, WITHOUT ROWID, or an index ending in id): no temporary B-tree
// sorting every channel, so a renewal pass and a page cost their own rows.
func TestChannelPlansUseIndexes(t *testing.T) {
	s := New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	storetest.FillChannels(t, s, 200)
	if _, err := s.db.Write.Exec(`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	plan := explain(t, s, store.ChannelsDueQuery(channelSelect), []any{storetest.ChannelsDueAt.UnixMicro(), afterMicros(time.Time{}), "", 10})
	if !strings.Contains(plan, "USING INDEX channels_due") || strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("ChannelsDue does not read channels_due in order:\n%s", plan)
	}
	for name, p := range storetest.ChannelListShapes {
		q, args := store.ChannelListQuery(channelSelect, p)
		plan := explain(t, s, q, args)
		want := "SEARCH channels USING PRIMARY KEY"
		switch {
		case p.Source != "" && p.State != 0:
			want = "USING INDEX channels_source_id|USING INDEX channels_state_id"
		case p.State != 0:
			want = "USING INDEX channels_state_id"
		case p.Source != "":
			want = "USING INDEX channels_source_id"
		}
		if !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(plan, w) }) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("list %s: plan does not read %q in id order:\n%s", name, want, plan)
		}
	}
}
