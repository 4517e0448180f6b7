package dbstats

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// syncBuffer is a log destination the reading goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A reading is reused for Reuse, whatever the database does meanwhile; then read again. A database that
// fails is reported absent, logged once, and not queried again before Reuse.
func TestSourceReusesAReadingAndLogsAFailureOnce(t *testing.T) {
	h := dbtest.Open(t, db.SQLite, "webhook")
	var logs syncBuffer
	s := newSource(Source{Service: "webhook", SQLite: h.SQLite, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	t0 := time.Now()
	first := s.get(t0)
	if first == nil || first.size <= 0 {
		t.Fatalf("first reading: %+v", first)
	}
	if _, err := h.SQLite.Write.Exec(`CREATE TABLE filler (b BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
		INSERT INTO filler SELECT randomblob(4096) FROM n`); err != nil {
		t.Fatal(err)
	}
	if again := s.get(t0.Add(Reuse - time.Millisecond)); again != first {
		t.Errorf("a reading younger than %s was not reused", Reuse)
	}
	fresh := s.get(t0.Add(Reuse))
	if fresh == nil || fresh == first || fresh.wal <= first.wal {
		t.Errorf("after %s: %+v, want a new reading with the 800 KiB written in the WAL (was %+v)", Reuse, fresh, first)
	}

	h.Close()
	for i := range 3 {
		if r := s.get(t0.Add(time.Duration(2+i) * Reuse)); r != nil {
			t.Fatalf("a closed database read as %+v", r)
		}
	}
	if n := strings.Count(logs.String(), "database gauges not read"); n != 1 {
		t.Errorf("%d warnings for one failing database, want 1:\n%s", n, logs.String())
	}
}

// A reading that cannot get a connection (every reader busy) is given up after Timeout: a scrape does
// not wait for the database.
func TestSourceGivesUpAfterTimeout(t *testing.T) {
	h := dbtest.Open(t, db.SQLite, "webhook")
	h.SQLite.Read.SetMaxOpenConns(1)
	conn, err := h.SQLite.Read.Conn(context.Background()) // the only reader, held for the test
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := newSource(Source{Service: "webhook", SQLite: h.SQLite, Log: slog.New(slog.DiscardHandler)})
	start := time.Now()
	if r := s.get(start); r != nil {
		t.Fatalf("read with no reader free: %+v", r)
	}
	if took := time.Since(start); took < Timeout || took > Timeout+5*time.Second {
		t.Errorf("gave up after %s, want about %s", took, Timeout)
	}
}
