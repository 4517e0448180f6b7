package store_test

import (
	"context"
	"database/sql"
	"io/fs"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// channelRow inserts a channel row as raw SQL with one column replaced, so that the CHECKs are tested on
// what only a bug or a hand edit could write (the stores refuse these values before the database does).
func channelRow(d db.Dialect, column, value string) string {
	cols := []string{"id", "source", "connection_id", "events", "notify_url", "return_affected_field_values", "sealed_token", "state",
		"expire_time", "create_time", "update_time", "renew_time", "failed_renewals", "last_error", "version"}
	vals := map[string]string{"id": "'123'", "source": "'zoho'", "connection_id": "'c'", "events": `'["Deals.all"]'`, "notify_url": "'u'",
		"return_affected_field_values": "0", "sealed_token": "x'00ff'", "state": "1", "expire_time": "1", "create_time": "1",
		"update_time": "1", "renew_time": "NULL", "failed_renewals": "0", "last_error": "''", "version": "1"}
	if d == db.Postgres {
		vals["return_affected_field_values"], vals["sealed_token"] = "false", `'\x00ff'::bytea`
		for _, c := range []string{"expire_time", "create_time", "update_time"} {
			vals[c] = "now()"
		}
	}
	if column != "" {
		vals[column] = value
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = vals[c]
	}
	return "INSERT INTO channels (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(out, ", ") + ")"
}

// The channels table refuses impossible values on both backends, and 0006 reverts and applies again.
func TestMigration0006Channels(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			h := dbtest.Open(t, d, "webhook")
			sqldb := h.SQL()
			if d == db.Postgres {
				defer sqldb.Close()
			}
			exec := func(q string) error { _, err := sqldb.ExecContext(ctx, q); return err }
			if err := exec(channelRow(d, "", "")); err != nil {
				t.Fatalf("a valid row: %v", err)
			}
			refused := map[string][2]string{
				"empty id":        {"id", "''"},
				"19 digits":       {"id", "'1234567890123456789'"},
				"letters":         {"id", "'12a'"},
				"space":           {"id", "' 12'"},
				"non-ASCII digit": {"id", "'١٢'"},
				"state 0":         {"state", "0"},
				"state 5":         {"state", "5"},
				"events object":   {"events", `'{"a":1}'`},
				"no token":        {"sealed_token", "x''"},
				"negative fails":  {"failed_renewals", "-1"},
				"version 0":       {"version", "0"},
			}
			if d == db.SQLite {
				refused["blob id"] = [2]string{"id", "x'3132'"} // digits as bytes: TEXT affinity keeps a blob a blob
				refused["events not JSON"] = [2]string{"events", "'[x'"}
				refused["flag 2"] = [2]string{"return_affected_field_values", "2"}
				refused["text time"] = [2]string{"expire_time", "'soon'"}
				refused["text token"] = [2]string{"sealed_token", "'tok'"}
			}
			for name, r := range refused {
				if err := exec(channelRow(d, r[0], r[1])); err == nil {
					t.Errorf("%s: stored", name)
				}
			}
			// Ids compare as text on both: '0123' is another id than '123', and orders before it.
			if err := exec(channelRow(d, "id", "'0123'")); err != nil {
				t.Fatal(err)
			}
			var first string
			if err := sqldb.QueryRowContext(ctx, `SELECT id FROM channels ORDER BY id LIMIT 1`).Scan(&first); err != nil || first != "0123" {
				t.Fatalf("first id %q %v", first, err)
			}

			fsys, ms := dbtest.Migrations(t, d, "webhook")
			down, err := fs.ReadFile(fsys, "0006_channels.down.sql")
			if err != nil {
				t.Fatal(err)
			}
			if err := exec(string(down)); err != nil {
				t.Fatalf("down: %v", err)
			}
			if err := sqldb.QueryRowContext(ctx, `SELECT id FROM channels`).Scan(&first); err == nil || err == sql.ErrNoRows {
				t.Fatalf("channels still there after down: %v", err)
			}
			if err := exec(ms[5].Up); err != nil {
				t.Fatalf("up after down: %v", err)
			}
			if err := exec(channelRow(d, "", "")); err != nil {
				t.Fatalf("a valid row after up: %v", err)
			}
		})
	}
}
