package store_test

import (
	"context"
	"database/sql"
	"reflect"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/store/sqlite"
)

// Events stored before the deny list lose their credential headers, and names that only look like
// Authorization, when the schema is upgraded; every other header stays, in order.
func TestUpgradeScrubsCredentialHeaders(t *testing.T) {
	const before = `[{"name":"Authorization ","values":["Bearer a"]},{"name":"Content-Type","values":["application/json"]},` +
		`{"name":"X-Api-Key","values":["k"]},{"name":"x-auth-token","values":["t"]},{"name":"","values":["e"]},` +
		`{"name":"X-Zoho-Signature","values":["s1","s2"]},{"name":"Cookie","values":["c=d"]},` +
		`{"name":"X Note","values":["space"]},{"name":"Authörization","values":["u"]},{"name":"X-Ok_1.~!#$%&'*+^|` + "`" + `","values":["v"]}]`
	want := []store.Header{{Name: "Content-Type", Values: []string{"application/json"}}, {Name: "X-Zoho-Signature", Values: []string{"s1", "s2"}},
		{Name: "X-Ok_1.~!#$%&'*+^|`", Values: []string{"v"}}}
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			old := dbtest.OpenAtVersion(t, d, dbtest.Config(t, d), "webhook", 2)
			h, sqldb := old.Handle, old.SQL
			insertOld(t, sqldb, d, before, "01900000-0000-7000-8000-000000000001", "a")
			insertOld(t, sqldb, d, `[{"name":"Content-Type","values":["text/plain"]}]`, "01900000-0000-7000-8000-000000000002", "b")
			old.Upgrade(t)
			var s store.Store
			if d == db.SQLite {
				s = sqlite.New(h.SQLite)
			} else {
				s = postgres.New(h.Postgres)
			}
			got, err := s.EventGet(ctx, "01900000-0000-7000-8000-000000000001")
			if err != nil || !reflect.DeepEqual(got.Headers, want) {
				t.Fatalf("scrubbed headers: %+v %v\nwant %+v", got.Headers, err, want)
			}
			untouched, err := s.EventGet(ctx, "01900000-0000-7000-8000-000000000002")
			if err != nil || !reflect.DeepEqual(untouched.Headers, []store.Header{{Name: "Content-Type", Values: []string{"text/plain"}}}) {
				t.Fatalf("clean event changed: %+v %v", untouched, err)
			}
		})
	}
}

func insertOld(t *testing.T, sqldb *sql.DB, d db.Dialect, headers, id, key string) {
	t.Helper()
	q := `INSERT INTO events (id, source, dedupe_key, status, content_type, payload, headers, receive_time, update_time)
		VALUES ($1, 'zoho', $2, 1, '', $3, $4, 0, 0)`
	if d == db.Postgres {
		q = `INSERT INTO events (id, source, dedupe_key, status, content_type, payload, headers, receive_time, update_time)
		VALUES ($1, 'zoho', $2, 1, '', $3, $4::jsonb, now(), now())`
	}
	if _, err := sqldb.Exec(q, id, key, []byte("{}"), headers); err != nil {
		t.Fatal(err)
	}
}
