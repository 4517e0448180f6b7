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
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/db"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

// holdEnv, when set to "read:<path>" or "write:<path>", makes TestHoldProcess the helper process of the
// tests that need another process in a transaction on a database: it opens a read transaction (BEGIN,
// SELECT) or takes the write lock (BEGIN IMMEDIATE), prints "holding", and holds it until its stdin
// closes.
const holdEnv = "SERGASCTL_TEST_HOLD"

func TestHoldProcess(t *testing.T) {
	mode, path, ok := strings.Cut(os.Getenv(holdEnv), ":")
	if !ok {
		t.Skip("helper process of the tests that hold a database from another process")
	}
	// A deferred BEGIN for a reader, as the services' readers: the driver's default, IMMEDIATE, takes
	// the write lock, which is what a writer wants.
	txlock := "deferred"
	if mode == "write" {
		txlock = "immediate"
	}
	d, err := sql.Open("sqlite3", "file:"+path+"?_txlock="+txlock+"&_pragma=busy_timeout(5000)")
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
	if err := tx.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		t.Fatal(err)
	}
	fmt.Println("holding")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
}

// holder is a helper process in a transaction on a database.
type holderProc struct {
	cmd *exec.Cmd
	end func() // ends the transaction and waits for the process
}

// startHolder starts TestHoldProcess in mode (read or write) on path and waits until it holds.
func startHolder(t *testing.T, mode, path string) *holderProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+mode+":"+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holderProc{cmd: cmd, end: sync.OnceFunc(func() { stdin.Close(); _ = cmd.Wait() })}
	t.Cleanup(h.end)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "holding" {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("the %s holder ended before holding: %v", mode, sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the %s holder did not hold within a minute", mode)
	}
	return h
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

	reader := startHolder(t, "read", h.SQLite.Path)

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
		w.OldestReader.PID != reader.cmd.Process.Pid || w.OldestReader.SnapshotFrame > w.Checkpointed {
		t.Fatalf("health while pid %d holds a read transaction: WAL %+v (oldest reader %+v)\n%s", reader.cmd.Process.Pid, w, w.OldestReader, r.stdout)
	}
	advice := strings.Join(s.Advice, "\n")
	for _, want := range []string{fmt.Sprintf("pid %d (", reader.cmd.Process.Pid), "has held a read transaction since", "grows with every write",
		"End that transaction"} {
		if !strings.Contains(advice, want) {
			t.Errorf("advice lacks %q: %q", want, advice)
		}
	}
	text := mustRun(t, e, 0, "health", "--service", "webhook").stdout
	if !strings.Contains(text, "ADVICE the WAL") || !strings.Contains(text, fmt.Sprintf("the oldest pid %d", reader.cmd.Process.Pid)) {
		t.Errorf("text output does not explain the WAL:\n%s", text)
	}

	reader.end()
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
