package webhook

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store/postgres"
)

// On PostgreSQL an event numbered before another can commit after it. Paging ListEvents while the earlier
// one is still uncommitted must not hand out a cursor past it: once it commits, paging on from the token
// lists it. (Paging by seq alone listed the later event, handed out its seq, and never listed the
// earlier one.) Two real transactions commit out of order; a third, unrelated, commits first.
func TestListNeverSkipsALateCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	h := dbtest.Open(t, db.Postgres, "webhook")
	hs := startServiceOn(t, postgres.New(h.Postgres), map[string]string{})
	ctx := t.Context()
	ingest := func(body string) string {
		t.Helper()
		resp, err := hs.client.Ingest(ctx, delivery(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetEventId()
	}
	first := ingest(`{"n":"first"}`)

	// The late event: inserted (numbered) now, committed at the end. Its insert is the statement the
	// store runs, so seq and txid come from the same column defaults.
	late, err := h.Postgres.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback(context.Background())
	lateID := uuid.Must(uuid.NewV7()).String()
	var lateSeq int64
	if err := late.QueryRow(ctx, `INSERT INTO events (id, source, dedupe_key, status, content_type, payload, headers,
		receive_time, update_time) VALUES ($1, 'zoho', 'late', 1, '', '\x7b7d', '[]', now(), now()) RETURNING seq`, lateID).Scan(&lateSeq); err != nil {
		t.Fatal(err)
	}
	b1, b2 := ingest(`{"n":"b1"}`), ingest(`{"n":"b2"}`)
	var b1Seq int64
	if err := h.Postgres.Pool.QueryRow(ctx, `SELECT seq FROM events WHERE id = $1`, b1).Scan(&b1Seq); err != nil || b1Seq <= lateSeq {
		t.Fatalf("precondition: the late event must be numbered first (late %d, b1 %d, %v)", lateSeq, b1Seq, err)
	}

	// Page one event at a time while the late event is uncommitted. The pages may stop early (other
	// transactions on the server hold the horizon back too); what matters is where the token points.
	var listed []string
	token := ""
	page := func() (more bool) {
		t.Helper()
		resp, err := hs.client.ListEvents(ctx, &webhookv1.ListEventsRequest{Source: "zoho", PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEvents() {
			listed = append(listed, e.GetId())
		}
		if resp.GetNextPageToken() != "" {
			token = resp.GetNextPageToken()
		}
		return resp.GetNextPageToken() != "" && len(resp.GetEvents()) > 0
	}
	for i := 0; i < 5 && page(); i++ {
	}
	for _, id := range listed {
		if id == b1 || id == b2 {
			t.Fatalf("a page handed on a cursor past an uncommitted event: listed %v", listed)
		}
	}
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Now page on from the last token until everything is listed; a page can come back empty while an
	// older transaction elsewhere on the server is still running, so this waits, with a deadline.
	lastPage := false
	testutil.Eventually(t, 20*time.Second, "every event listed once the late one committed", func() bool {
		resp, err := hs.client.ListEvents(ctx, &webhookv1.ListEventsRequest{Source: "zoho", PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEvents() {
			listed = append(listed, e.GetId())
		}
		if resp.GetNextPageToken() != "" {
			token = resp.GetNextPageToken()
		} else if len(resp.GetEvents()) > 0 {
			lastPage = true // everything committed has been listed
		}
		return len(listed) >= 4 || lastPage
	})
	want := []string{first, lateID, b1, b2}
	if len(listed) != len(want) {
		t.Fatalf("listed %v\nwant %v", listed, want)
	}
	for i := range want {
		if listed[i] != want[i] {
			t.Fatalf("listed %v\nwant %v (in commit-safe order, nothing skipped)", listed, want)
		}
	}
}
