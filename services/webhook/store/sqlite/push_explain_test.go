package sqlite

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/storetest"
)

// The backlog gauges read the outstanding deliveries and the dead letters through indexes that hold
// nothing else: the partial deliveries_due index, or deliveries_status_id searched for the statuses the
// query names (without ANALYZE, SQLite takes the latter for both: three searches for 1, 2 and 4, one for
// 5). However many delivered rows there are, none is read.
func TestBacklogPlanReadsNoDeliveredRow(t *testing.T) {
	s := New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	storetest.FillDeliveries(t, s, 300)
	plan := explain(t, s, subscriptionBacklog, nil)
	reads := 0
	for _, line := range strings.Split(plan, "\n") {
		if !strings.Contains(line, " deliveries") {
			continue
		}
		reads++
		if !backlogIndexes.MatchString(line) {
			t.Errorf("plan reads deliveries otherwise: %q\n%s", line, plan)
		}
	}
	if reads != 2 {
		t.Errorf("plan reads deliveries %d times, want 2 (outstanding, dead letters):\n%s", reads, plan)
	}
}

// backlogIndexes are the reads of deliveries the backlog may make.
var backlogIndexes = regexp.MustCompile(`^(SCAN|SEARCH) deliveries USING (COVERING )?INDEX (deliveries_due|deliveries_status_id \(status=\?\))$`)
