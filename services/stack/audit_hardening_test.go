package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	auditstore "github.com/sergas/core/services/audit/store"
	auditpg "github.com/sergas/core/services/audit/store/postgres"
	auditsqlite "github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

// auditBackends are the environments of a stack on SQLite and on PostgreSQL; the audit database of
// each can be opened beside the running stack, as an older version or an operator would write to it.
var auditBackends = map[string]func(t *testing.T) map[string]string{
	"sqlite": func(t *testing.T) map[string]string { return map[string]string{"DATA_DIR": t.TempDir()} },
	"postgres": func(t *testing.T) map[string]string {
		url := dbtest.PostgresURL(t)
		return map[string]string{
			"DATABASE_URL": url, "TOKEN_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
			"AUDIT_DATABASE_SCHEMA": dbtest.NewSchema(t, url), "WEBHOOK_DATABASE_SCHEMA": dbtest.NewSchema(t, url),
			"DATABASE_POOL_SIZE": "2",
		}
	},
}

// openAuditStore opens the audit database of a stack started with env.
func openAuditStore(t *testing.T, env map[string]string) auditstore.Store {
	t.Helper()
	c := db.LoadConfig(config.FromMap(env), "audit")
	h, err := db.Open(context.Background(), c, "audit", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if h.SQLite != nil {
		return auditsqlite.New(h.SQLite)
	}
	return auditpg.New(h.Postgres)
}

// doAs sends a REST request with key and returns the status and the raw body.
func (r *running) doAs(t *testing.T, key, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func deepJSON(levels int) string {
	return strings.Repeat(`{"a":`, levels-1) + `"bottom"` + strings.Repeat("}", levels-1)
}

// TestAuditRESTHardening drives issue #7's audit items through the gateway's REST routes, on both
// backends: what the gateway's JSON reader accepts but no reader could serve back is refused with 400,
// rows that break today's rules still serve every page, keys belong to their writer, every event names
// its writer, and inputs that one backend cannot store or compares differently answer alike.
func TestAuditRESTHardening(t *testing.T) {
	for name, backend := range auditBackends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			admin := authtest.NewKey(t, "admin", auth.AllScopes...)
			w1 := authtest.NewKey(t, "writer-1", auth.ScopeAuditWrite)
			w2 := authtest.NewKey(t, "writer-2", auth.ScopeAuditWrite)
			env := backend(t)
			env["AUTH_API_KEYS"], env["TEST_ADMIN_KEY"] = authtest.JSON(admin, w1, w2), admin.Key
			dbEnv := map[string]string{}
			for k, v := range env {
				dbEnv[k] = v
			}
			r := start(t, env)
			const event = `{"actor":"agent-7","action":"crm.deal.update","outcome":"OUTCOME_SUCCESS"`

			t.Run("DeepMetadata", func(t *testing.T) {
				// 3,333 levels: the gateway and the service decode it, and it was stored; the answer was
				// 500 and so was every page that held it.
				code, body := r.doAs(t, w1.Key, "POST", "/v1/audit/events", event+`,"metadata":{"x":`+deepJSON(3333)+`}}`)
				if code != 400 || !strings.Contains(body, "nest") {
					t.Fatalf("3,333 levels: %d %.200s", code, body)
				}
				code, body = r.doAs(t, w1.Key, "POST", "/v1/audit/events", event+`,"metadata":{"x":`+deepJSON(63)+`}}`)
				if code != 200 {
					t.Fatalf("64 levels: %d %.300s", code, body)
				}
				if code, body := r.doAs(t, admin.Key, "GET", "/v1/audit/events", ""); code != 200 {
					t.Fatalf("page with a 64-level event: %d %.300s", code, body)
				}
			})

			t.Run("StoredRowsServeEveryPage", func(t *testing.T) {
				// A row as an older version stored it: 3,333 levels of metadata, chained like any other.
				e := storetest.NewEvent("agent-old", "old.deep", time.Now())
				e.Metadata = `{"x":` + deepJSON(3333) + `}`
				if _, _, err := openAuditStore(t, dbEnv).EventAppend(context.Background(), e); err != nil {
					t.Fatal(err)
				}
				for _, path := range []string{"/v1/audit/events", "/v1/audit/events?descending=true", "/v1/audit/events?actor=agent-old", "/v1/audit/events/" + e.ID} {
					code, body := r.doAs(t, admin.Key, "GET", path, "")
					if code != 200 || !strings.Contains(body, "sergas.unreadable_metadata") {
						t.Errorf("GET %s: %d %.300s", path, code, body)
					}
				}
			})

			t.Run("KeysBelongToTheirWriter", func(t *testing.T) {
				secret := event + `,"metadata":{"terms":"confidential"},"idempotencyKey":"deal-42"}`
				claim := event + `,"metadata":{"noise":true},"idempotencyKey":"deal-42"}`
				if code, body := r.doAs(t, w2.Key, "POST", "/v1/audit/events", claim); code != 200 {
					t.Fatalf("claim: %d %s", code, body)
				}
				code, body := r.doAs(t, w1.Key, "POST", "/v1/audit/events", secret)
				var first struct {
					Event     map[string]any `json:"event"`
					Duplicate bool           `json:"duplicate"`
				}
				if err := json.Unmarshal([]byte(body), &first); code != 200 || err != nil || first.Duplicate || first.Event["principal"] != "apikey:writer-1" {
					t.Fatalf("writer 1's event was not stored as its own: %d %s", code, body)
				}
				code, body = r.doAs(t, w2.Key, "POST", "/v1/audit/events", claim)
				if code != 200 || strings.Contains(body, "confidential") || !strings.Contains(body, `"duplicate":true`) {
					t.Fatalf("writer 2's retry: %d %s", code, body)
				}
				if code, body := r.doAs(t, w2.Key, "POST", "/v1/audit/events", secret); code != 409 || strings.Contains(body, "confidential") {
					t.Fatalf("writer 2 reusing the key with other content: %d %s", code, body)
				}
				code, body = r.doAs(t, w1.Key, "POST", "/v1/audit/events", secret)
				if code != 200 || !strings.Contains(body, `"duplicate":true`) || !strings.Contains(body, first.Event["id"].(string)) {
					t.Fatalf("writer 1's retry: %d %s", code, body)
				}
			})

			t.Run("InputsBothBackendsTreatAlike", func(t *testing.T) {
				for name, body := range map[string]string{
					"NUL in actor":        `{"actor":"agent\u0000","action":"a","outcome":"OUTCOME_SUCCESS"}`,
					"NUL in resource":     event + `,"resource":"Deals/\u0000"}`,
					"NUL in metadata":     event + `,"metadata":{"note":"a\u0000b"}}`,
					"NUL in a key":        event + `,"metadata":{"a\u0000":1}}`,
					"line break in actor": `{"actor":"agent-7\nroot","action":"a","outcome":"OUTCOME_SUCCESS"}`,
					"escape in action":    `{"actor":"agent-7","action":"a\u001b[2J","outcome":"OUTCOME_SUCCESS"}`,
					"year 1":              event + `,"occurTime":"0001-01-01T00:00:00Z"}`,
					"next year":           event + fmt.Sprintf(`,"occurTime":"%d-01-01T00:00:00Z"}`, time.Now().Year()+1),
				} {
					if code, resp := r.doAs(t, w1.Key, "POST", "/v1/audit/events", body); code != 400 {
						t.Errorf("%s: %d %s", name, code, resp)
					}
				}
				for _, q := range []string{"actor=%00", "resource=a%00b"} {
					if code, resp := r.doAs(t, admin.Key, "GET", "/v1/audit/events?"+q, ""); code != 400 {
						t.Errorf("filter %s: %d %s", q, code, resp)
					}
				}
				if code, resp := r.doAs(t, admin.Key, "GET", "/v1/audit/events?startTime=0001-01-01T00:00:00Z", ""); code != 200 {
					t.Errorf("start time in year 1: %d %s", code, resp)
				}
				code, body := r.doAs(t, w1.Key, "POST", "/v1/audit/events", event+"}")
				var rec struct{ Event struct{ ID string } }
				if err := json.Unmarshal([]byte(body), &rec); code != 200 || err != nil {
					t.Fatalf("record: %d %s", code, body)
				}
				for _, id := range []string{rec.Event.ID, strings.ToUpper(rec.Event.ID)} {
					if code, resp := r.doAs(t, admin.Key, "GET", "/v1/audit/events/"+id, ""); code != 200 || !strings.Contains(resp, rec.Event.ID) {
						t.Errorf("GET %s: %d %s", id, code, resp)
					}
				}
			})
		})
	}
}
