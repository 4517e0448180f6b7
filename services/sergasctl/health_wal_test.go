package sergasctl_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/db"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

// walReaderEnv, when set to a database path, makes TestWALReaderProcess the helper process of
// TestHealthNamesTheReaderHoldingTheWAL: it opens a read transaction, says so, and holds it until its
// stdin closes.
const walReaderEnv = "SERGASCTL_TEST_WAL_READER"

func TestWALReaderProcess(t *testing.T) {
	path := os.Getenv(walReaderEnv)
	if path == "" {
		t.Skip("helper process of TestHealthNamesTheReaderHoldingTheWAL")
	}
	// A deferred BEGIN, as the services' readers: the driver's default, IMMEDIATE, would take the write lock.
	d, err := sql.Open("sqlite3", "file:"+path+"?_txlock=deferred&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tx, err := d.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	fmt.Println("reading")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
}

// A read transaction held by another process while the service writes keeps the WAL from being copied
// back: health names that process as the oldest reader, says how far the checkpoint got, and explains
// what to do; once the reader ends, the same command finds the WAL copied back and nothing to explain.
func TestHealthNamesTheReaderHoldingTheWAL(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, db.SQLite)
	mustRun(t, e, 0, "setup", "--service", "webhook")
	h := serviceDB(t, e, "webhook") // as the service opens it, with its background checkpointer
	ws := webhookStoreOf(h)

	reader := exec.Command(os.Args[0], "-test.run=^TestWALReaderProcess$", "-test.count=1")
	reader.Env = append(os.Environ(), walReaderEnv+"="+h.SQLite.Path)
	stdin, err := reader.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := reader.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	reader.Stderr = os.Stderr
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	ended := false
	endReader := func() {
		if !ended {
			ended = true
			stdin.Close()
			_ = reader.Wait()
		}
	}
	t.Cleanup(endReader)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "reading" {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("the reader process ended before reading: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the reader process did not start reading within a minute")
	}

	// The service writes on: 200 events of 4 KiB, each its own commit.
	payload := []byte(`{"pad":"` + strings.Repeat("x", 4096) + `"}`)
	for i := range 200 {
		if _, _, err := ws.EventInsert(ctx, &webhookstore.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "zoho", DedupeKey: "k" + strconv.Itoa(i),
			Status: webhookstore.StatusPending, ContentType: "application/json", Payload: payload, ReceiveTime: time.Now().UTC().Truncate(time.Microsecond)}); err != nil {
			t.Fatal(err)
		}
	}

	var doc walDoc
	r := mustRun(t, e, 0, "health", "--service", "webhook", "--json")
	r.decode(t, &doc)
	s := doc.Services[0]
	w := s.SQLite.WAL
	if w == nil || !w.Pinned || w.Checkpointed >= w.Frames || w.Frames < 200 || !w.ReadersKnown || w.OldestReader == nil ||
		w.OldestReader.PID != reader.Process.Pid || w.OldestReader.SnapshotFrame > w.Checkpointed {
		t.Fatalf("health while pid %d holds a read transaction: WAL %+v (oldest reader %+v)\n%s", reader.Process.Pid, w, w.OldestReader, r.stdout)
	}
	advice := strings.Join(s.Advice, "\n")
	for _, want := range []string{fmt.Sprintf("pid %d (", reader.Process.Pid), "has held a read transaction since", "grows with every write",
		"End that transaction"} {
		if !strings.Contains(advice, want) {
			t.Errorf("advice lacks %q: %q", want, advice)
		}
	}
	text := mustRun(t, e, 0, "health", "--service", "webhook").stdout
	if !strings.Contains(text, "ADVICE the WAL") || !strings.Contains(text, fmt.Sprintf("the oldest pid %d", reader.Process.Pid)) {
		t.Errorf("text output does not explain the WAL:\n%s", text)
	}

	endReader()
	doc = walDoc{}
	r = mustRun(t, e, 0, "health", "--service", "webhook", "--json")
	r.decode(t, &doc)
	s = doc.Services[0]
	if w := s.SQLite.WAL; w == nil || w.Pinned || w.Checkpointed != w.Frames || len(w.Readers) != 0 || len(s.Advice) != 0 {
		t.Errorf("health once the reader ended: WAL %+v, advice %q", w, s.Advice)
	}
}

// walDoc is the part of health's --json output these tests read.
type walDoc struct {
	Services []struct {
		SQLite *struct {
			WALBytes int64 `json:"wal_bytes"`
			WAL      *struct {
				Frames, Checkpointed int64
				Busy, Pinned         bool
				ReadersKnown         bool `json:"readers_known"`
				Readers              []walReaderDoc
				OldestReader         *walReaderDoc `json:"oldest_reader"`
			}
		}
		Advice []string
	}
}

type walReaderDoc struct {
	PID           int
	Command       string
	SnapshotFrame int64 `json:"snapshot_frame"`
}
