package sergasctl

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// walHealth says whether the WAL can be copied back into the database file, and who keeps it from it.
//
// A WAL grows while it cannot be reset to its start, which needs every frame copied back
// (checkpointed) and no reader left using it. A reader sees the database as of the WAL frame its read
// transaction began at (its snapshot): a checkpoint stops at the oldest reader's snapshot, and the WAL
// is not reset while any reader uses it. So a read transaction left open in another process (an export,
// a backup, an interactive sqlite3 shell, a stuck request) makes the WAL grow by every write after it.
type walHealth struct {
	// Frames is the WAL's length in frames (one page each) and Checkpointed how many of them are in the
	// database file after the PASSIVE checkpoint health ran (which waits for nobody and blocks no writer,
	// as the services' own checkpointer every 250 ms). Busy: another checkpoint was running; the
	// figures are then those the WAL index holds.
	Frames       int64 `json:"frames"`
	Checkpointed int64 `json:"checkpointed"`
	Busy         bool  `json:"busy"`
	// Pinned is set when frames remain that the checkpoint could not copy back.
	Pinned bool `json:"pinned"`
	// Readers are the read transactions of other processes that use the WAL (Linux: their locks on the
	// WAL index), oldest snapshot first; OldestReader is the first of them. Each keeps the WAL from
	// being reset, and one whose snapshot is older than the WAL's end keeps it from being copied back.
	Readers      []walReader `json:"readers"`
	OldestReader *walReader  `json:"oldest_reader"`
	// ReadersKnown is false where the readers cannot be seen (not Linux, or processes of another user).
	ReadersKnown bool `json:"readers_known"`
}

// walReader is a process with a read transaction open on the WAL.
type walReader struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
	// SnapshotFrame is the WAL frame its transaction began at: it sees nothing written after it.
	SnapshotFrame int64 `json:"snapshot_frame"`
}

// The WAL index (the -shm file) layout, from SQLite's wal.c: two copies of the 48-byte header (mxFrame,
// the last valid frame, at offset 16), then nBackfill (frames copied back) at 96, the five read marks at
// 100, and the locks from 120: write, checkpoint, recover, then read lock i at 123+i. A reader holds
// read lock i (i ≥ 1) shared for as long as its transaction lasts, and read mark i is its snapshot.
// Everything is in the host's byte order.
const (
	shmMxFrame   = 16
	shmBackfill  = 96
	shmReadMarks = 100
	shmReadLock0 = 123
	shmReaders   = 5
	shmHeaderLen = 120
)

// walFigures runs a PASSIVE checkpoint on cn's writer and finds the readers that hold the WAL.
func walFigures(ctx context.Context, cn *conn) (*walHealth, error) {
	w := &walHealth{Readers: []walReader{}}
	var busy int
	if err := cn.SQL.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &w.Frames, &w.Checkpointed); err != nil {
		return nil, explainBusy(cn, "PRAGMA wal_checkpoint(PASSIVE)", err)
	}
	w.Busy = busy != 0
	hdr, err := readShmHeader(cn.SQLite.Path + "-shm")
	if err == nil && (w.Busy || w.Frames < 0) {
		w.Frames, w.Checkpointed = int64(hdr.mxFrame), int64(hdr.backfill)
	}
	w.Pinned = w.Checkpointed < w.Frames
	if err != nil {
		return w, nil // no WAL index to read: nothing more to say
	}
	readers, known := walReaders(cn.SQLite.Path+"-shm", hdr)
	w.Readers, w.ReadersKnown = readers, known
	if len(readers) > 0 {
		w.OldestReader = &readers[0]
	}
	return w, nil
}

type shmHeader struct {
	mxFrame, backfill uint32
	marks             [shmReaders]uint32
}

func readShmHeader(path string) (shmHeader, error) {
	var h shmHeader
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	b := make([]byte, shmHeaderLen)
	if _, err := io.ReadFull(f, b); err != nil {
		return h, err
	}
	le := binary.NativeEndian
	h.mxFrame, h.backfill = le.Uint32(b[shmMxFrame:]), le.Uint32(b[shmBackfill:])
	for i := range h.marks {
		h.marks[i] = le.Uint32(b[shmReadMarks+4*i:])
	}
	return h, nil
}

// walReaders lists the other processes holding a WAL read lock on shm, from the locks Linux
// lists for each open file in /proc/<pid>/fdinfo (POSIX and open-file-description locks alike), oldest
// snapshot first. known is false when /proc cannot be read.
func walReaders(shm string, hdr shmHeader) (readers []walReader, known bool) {
	procs, err := os.ReadDir(procFS)
	if err != nil {
		return []walReader{}, false
	}
	self := os.Getpid()
	seen := map[[2]int]bool{} // pid, read lock: a process's connections may share one lock
	for i, p := range procs {
		if i >= maxProcs {
			break
		}
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join(procFS, p.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		for j, fd := range fds {
			if j >= maxFDsPerProc {
				break
			}
			if target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err != nil || target != shm {
				continue
			}
			for _, slot := range readLocks(filepath.Join(dir, "fdinfo", fd.Name())) {
				if seen[[2]int{pid, slot}] {
					continue
				}
				seen[[2]int{pid, slot}] = true
				comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
				r := walReader{PID: pid, Command: strings.TrimSpace(string(comm))}
				if slot > 0 {
					r.SnapshotFrame = int64(hdr.marks[slot])
				}
				readers = append(readers, r)
			}
		}
	}
	sort.Slice(readers, func(i, j int) bool {
		if readers[i].SnapshotFrame != readers[j].SnapshotFrame {
			return readers[i].SnapshotFrame < readers[j].SnapshotFrame
		}
		return readers[i].PID < readers[j].PID
	})
	if readers == nil {
		readers = []walReader{}
	}
	return readers, true
}

// maxLockLines bounds the lines read from one fdinfo file.
const maxLockLines = 1024

// readLocks returns the WAL read locks that an fdinfo file lists as held shared: lines such as
// "lock:	1: OFDLCK ADVISORY  READ -1 fe:00:10273480 124 124". Read lock 0 is a reader that began when
// the WAL was all copied back and reads the database file alone: no checkpoint may write that file
// under it, so it holds back every frame written since (its snapshot is frame 0).
func readLocks(fdinfo string) []int {
	f, err := os.Open(fdinfo)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	for n := 0; n < maxLockLines && sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] != "lock:" || fields[4] != "READ" {
			continue
		}
		start, err1 := strconv.ParseInt(fields[len(fields)-2], 10, 64)
		end, err2 := strconv.ParseInt(fields[len(fields)-1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		for slot := range shmReaders {
			if b := int64(shmReadLock0 + slot); start <= b && b <= end {
				out = append(out, slot)
			}
		}
	}
	return out
}

// walAdvice explains the WAL in plain words: nothing when it is copied back and small, otherwise what
// holds it and what to do.
func walAdvice(s *sqliteHealth) []string {
	w := s.WAL
	if w == nil {
		return nil
	}
	var out []string
	if w.Pinned {
		held := fmt.Sprintf("the WAL (%s, %d frames) cannot be copied back into the database past frame %d", bytes(s.WALBytes), w.Frames, w.Checkpointed)
		if r := w.OldestReader; r != nil {
			out = append(out, fmt.Sprintf("%s: pid %d (%s) has held a read transaction %s, and the WAL grows with every write until it ends. "+
				"End that transaction (a long export or backup, an open sqlite3 shell, a stuck request), or restart that process; the next checkpoint then copies the WAL back",
				held, r.PID, r.Command, sinceFrame(r.SnapshotFrame)))
		} else {
			out = append(out, fmt.Sprintf("%s: a read transaction in another process holds it, and the WAL grows with every write until it ends. "+
				"The processes with the file open are %s; end the long read (an export, a backup, an sqlite3 shell) or restart the process holding it",
				held, describeHolders(s.OpenBy)))
		}
		return out
	}
	if r := firstWALReader(w.Readers); r != nil && s.WALBytes >= walLarge {
		out = append(out, fmt.Sprintf("the WAL (%s) is copied back but cannot restart from its beginning while pid %d (%s) keeps a read transaction open; it grows while that lasts",
			bytes(s.WALBytes), r.PID, r.Command))
	} else if s.WALBytes >= walLarge {
		out = append(out, fmt.Sprintf("the WAL file keeps the %s it grew to (SQLite reuses it from its start; nothing holds it now): \"sergasctl maintain\" truncates it", bytes(s.WALBytes)))
	}
	return out
}

// walLarge is the WAL size from which health mentions it: the services' checkpointer keeps it to a few
// megabytes under steady writes, and their backstop checkpoint starts at about 40 MB.
const walLarge = 64 << 20

// sinceFrame says when a reader's snapshot began.
func sinceFrame(n int64) string {
	if n == 0 {
		return "since before the WAL's first frame"
	}
	return fmt.Sprintf("since frame %d", n)
}

// firstWALReader is the oldest reader that uses WAL frames (a reader of the database file alone does
// not keep the WAL from restarting at its beginning), or nil.
func firstWALReader(rs []walReader) *walReader {
	for i := range rs {
		if rs[i].SnapshotFrame > 0 {
			return &rs[i]
		}
	}
	return nil
}
