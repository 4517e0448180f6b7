package postgres

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/storetest"
)

// The backlog gauges read the outstanding deliveries from the partial deliveries_due index (or
// deliveries_status_id for their three statuses) and the dead letters from deliveries_status_id: however
// many delivered rows there are, none is read. Sequential
// scans are off so that the small test tables show the plans of large ones.
func TestBacklogPlanReadsNoDeliveredRow(t *testing.T) {
	s := New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	storetest.FillDeliveries(t, s, 300)
	plan := explain(t, s, subscriptionBacklog, nil)
	// Outstanding: the partial index, or (once analysed, the planner may prefer it) deliveries_status_id
	// searched for the three statuses. Dead letters: deliveries_status_id for 5.
	outstanding := "Index Scan on deliveries_due |Index Scan using deliveries_due |Index Cond: (status = ANY ('{1,2,4}'::integer[]))"
	for _, want := range []string{outstanding, "Index Cond: (status = 5)"} {
		if !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(plan, w) }) {
			t.Errorf("plan does not use %q:\n%s", want, plan)
		}
	}
	reads := 0
	for _, line := range strings.Split(plan, "\n") {
		if cond := strings.TrimSpace(line); strings.HasPrefix(cond, "Index Cond: (status") &&
			cond != "Index Cond: (status = 5)" && cond != "Index Cond: (status = ANY ('{1,2,4}'::integer[]))" {
			t.Errorf("plan searches other statuses: %q\n%s", line, plan)
		}
		if !strings.Contains(line, "Scan") || !strings.Contains(line, "deliveries") {
			continue
		}
		reads++
		if !backlogReads.MatchString(line) {
			t.Errorf("plan reads deliveries otherwise: %q\n%s", line, plan)
		}
	}
	if reads == 0 {
		t.Errorf("plan reads no deliveries:\n%s", plan)
	}
}

// backlogReads are the reads of deliveries the backlog may make: the partial index (whole: every entry
// is outstanding), deliveries_status_id (its Index Cond checked above), and the heap rows those find.
var backlogReads = regexp.MustCompile(`(Bitmap Heap Scan on deliveries( deliveries_\d+)?|(Bitmap Index Scan on|Index Scan using|Index Only Scan using) (deliveries_due|deliveries_status_id)) `)
