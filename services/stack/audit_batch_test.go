package stack_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
)

// TestAuditBatchRecordThroughTheGateway drives RecordEvents over REST (POST
// /v1/audit/events:batchRecord) on both backends: a batch is answered event by event, duplicates and
// conflicts behave as for RecordEvent and name the event's index, nothing of a refused batch is stored,
// a reader cannot write, and secrets in metadata are redacted as the README's example shows.
func TestAuditBatchRecordThroughTheGateway(t *testing.T) {
	for name, backend := range auditBackends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			admin := authtest.NewKey(t, "admin", auth.AllScopes...)
			writer := authtest.NewKey(t, "writer", auth.ScopeAuditWrite)
			reader := authtest.NewKey(t, "reader", auth.ScopeAuditRead)
			env := backend(t)
			env["AUTH_API_KEYS"], env["TEST_ADMIN_KEY"] = authtest.JSON(admin, writer, reader), admin.Key
			r := start(t, env)
			ev := func(action, key string) string {
				return fmt.Sprintf(`{"actor":"agent-7","action":%q,"outcome":"OUTCOME_SUCCESS","idempotencyKey":%q}`, action, key)
			}
			batch := func(evs ...string) string { return `{"events":[` + strings.Join(evs, ",") + `]}` }
			const path = "/v1/audit/events:batchRecord"

			var evs []string
			for i := range 997 {
				evs = append(evs, ev(fmt.Sprintf("bulk.%d", i), ""))
			}
			evs = append(evs, ev("step", "run-1"), ev("step", "run-1"),
				`{"actor":"agent-7","action":"crm.login","outcome":"OUTCOME_SUCCESS","metadata":{"user":"ann","password":"hunter2","headers":[{"X-Api-Key":"k-1"}]}}`)
			code, body := r.doAs(t, writer.Key, "POST", path, batch(evs...))
			var resp struct {
				Results []struct {
					Event struct {
						Sequence string
						Hash     string
						ID       string
						Redacted bool
						Metadata map[string]any
					}
					Duplicate bool
				}
			}
			if err := json.Unmarshal([]byte(body), &resp); code != 200 || err != nil || len(resp.Results) != 1000 {
				t.Fatalf("batch of 1,000: %d %.300s", code, body)
			}
			for i, res := range resp.Results[:998] {
				if res.Duplicate || res.Event.Sequence != fmt.Sprint(i+1) || res.Event.Hash == "" {
					t.Fatalf("result %d: %+v", i, res)
				}
			}
			if d := resp.Results[998]; !d.Duplicate || d.Event.ID != resp.Results[997].Event.ID {
				t.Errorf("repeated key in the batch: %+v", d)
			}
			red := resp.Results[999].Event
			if !red.Redacted || red.Metadata["password"] != "[REDACTED]" || strings.Contains(body, "hunter2") || strings.Contains(body, `"k-1"`) {
				t.Errorf("redaction: %+v", red)
			}

			for what, c := range map[string]struct {
				key, body string
				code      int
				says      string
			}{
				"key reused with other content": {writer.Key, batch(ev("x", ""), ev("other", "run-1")), 409, "events[1]"},
				"invalid event":                 {writer.Key, batch(ev("x", ""), `{"actor":"agent-7","outcome":"OUTCOME_SUCCESS"}`), 400, "events[1]: action"},
				"empty":                         {writer.Key, `{"events":[]}`, 400, "1 to 1000"},
				"reader":                        {reader.Key, batch(ev("x", "")), 403, ""},
			} {
				code, body := r.doAs(t, c.key, "POST", path, c.body)
				if code != c.code || !strings.Contains(body, c.says) {
					t.Errorf("%s: %d %.300s", what, code, body)
				}
			}
			// A retry of part of the batch: duplicates, and nothing of the refused calls was stored.
			code, body = r.doAs(t, writer.Key, "POST", path, batch(ev("step", "run-1"), ev("after", "")))
			if code != 200 || !strings.Contains(body, `"duplicate":true`) {
				t.Fatalf("after the refusals: %d %.500s", code, body)
			}
			// The refused reader's call is recorded too (auth.denied, by another actor): count agent-7's.
			code, body = r.doAs(t, admin.Key, "GET", "/v1/audit/events?actor=agent-7&pageSize=1000", "")
			var page struct {
				Events        []json.RawMessage
				NextPageToken string
			}
			if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Events) != 1000 || page.NextPageToken != "" {
				t.Fatalf("agent-7 has %d events (want 999 + 1: a refused batch stored something): %d %.200s", len(page.Events), code, body)
			}
		})
	}
}
