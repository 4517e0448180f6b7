package sergasctl_test

import (
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
)

// maintainDoc is maintain's --json output.
type maintainDoc struct {
	Services []struct {
		Service, Error string
		AutoVacuum     string `json:"auto_vacuum"`
		Before, After  *struct {
			FileBytes int64 `json:"file_bytes"`
			FreePages int64 `json:"free_pages"`
			WALBytes  int64 `json:"wal_bytes"`
		}
		FreedBytes int64 `json:"freed_bytes"`
		Checkpoint *struct {
			Busy bool
		} `json:"wal_checkpoint"`
		QuickCheck []string `json:"quick_check"`
		PGBefore   *struct {
			SchemaBytes int64 `json:"schema_bytes"`
		} `json:"postgres_before"`
		Tables   int
		Steps    []struct{ Statement string }
		Warnings []string
		Problems []string
	}
	OK       bool
	ExitCode int `json:"exit_code"`
}

// TestMaintain fills a table, drops it, and runs maintain: without --full the free pages are reported
// and kept (auto_vacuum=none), the WAL is truncated and quick_check passes; with --full VACUUM returns
// them to the filesystem and says how much it freed. On PostgreSQL every table of the schema is
// vacuumed and analysed.
func TestMaintain(t *testing.T) {
	forDialects(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		mustRun(t, e, 0, "setup", "--service", "audit")
		h := serviceDB(t, e, "audit")
		fill := "INSERT INTO maintain_junk SELECT decode(repeat('ab', 2000), 'hex') FROM generate_series(1, 1000)"
		if d == db.SQLite {
			fill = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO maintain_junk SELECT randomblob(2000) FROM n"
		}
		blob := map[db.Dialect]string{db.SQLite: "BLOB", db.Postgres: "bytea"}[d]
		execSQL(t, h, "CREATE TABLE maintain_junk (b "+blob+")")
		execSQL(t, h, fill)
		execSQL(t, h, "DELETE FROM maintain_junk")

		var doc maintainDoc
		mustRun(t, e, 0, "maintain", "--service", "audit", "--json").decode(t, &doc)
		s := doc.Services[0]
		if !doc.OK || s.Error != "" || len(s.Problems) != 0 {
			t.Fatalf("maintain: %+v", doc)
		}
		if d == db.Postgres {
			if s.Tables < 2 || s.PGBefore == nil {
				t.Fatalf("tables vacuumed: %d, %+v", s.Tables, s)
			}
			for _, st := range s.Steps {
				if !strings.HasPrefix(st.Statement, "VACUUM (ANALYZE) ") {
					t.Errorf("step %q", st.Statement)
				}
			}
			if !strings.Contains(s.Steps[0].Statement, `"`) && !strings.Contains(s.Steps[0].Statement, ".") {
				t.Errorf("table not schema-qualified: %q", s.Steps[0].Statement)
			}
			return
		}
		if strings.Join(s.QuickCheck, ",") != "ok" || s.Checkpoint == nil || s.Checkpoint.Busy {
			t.Errorf("quick_check %v, checkpoint %+v", s.QuickCheck, s.Checkpoint)
		}
		if s.After.WALBytes != 0 {
			t.Errorf("WAL after a TRUNCATE checkpoint: %d bytes", s.After.WALBytes)
		}
		if s.AutoVacuum != "none" || s.After.FreePages < 400 || len(s.Warnings) == 0 || !strings.Contains(s.Warnings[0], "maintain --full") {
			t.Errorf("without --full the free pages stay and are named: auto_vacuum %s, free %d, warnings %v", s.AutoVacuum, s.After.FreePages, s.Warnings)
		}
		kept := *s.After // a copy: the next decode reuses the pointers

		var full maintainDoc
		mustRun(t, e, 0, "maintain", "--service", "audit", "--full", "--json").decode(t, &full)
		s = full.Services[0]
		if s.After.FreePages != 0 || s.After.FileBytes >= kept.FileBytes || s.FreedBytes < 400*4096 {
			t.Errorf("--full: free pages %d, file %d -> %d, freed %d", s.After.FreePages, kept.FileBytes, s.After.FileBytes, s.FreedBytes)
		}
		r := mustRun(t, e, 0, "maintain", "--service", "audit")
		if !strings.Contains(r.stdout, "quick_check: ok") || !strings.Contains(r.stdout, "freed") {
			t.Errorf("text output:\n%s", r.stdout)
		}
	})
}
