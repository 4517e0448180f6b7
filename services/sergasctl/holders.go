package sergasctl

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// holder is a process that has a database file or its WAL open.
type holder struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
}

// Bounds of the /proc walk: a host has far fewer processes, and a service far fewer descriptors.
const (
	maxProcs      = 65536
	maxFDsPerProc = 65536
	procFS        = "/proc"
)

// fileHolders lists the other processes that have path, its WAL or its index open, read from /proc
// (Linux; nil elsewhere, or for processes this user may not inspect). SQLite does not say who holds its
// locks or its readers; the processes with the files open are who can. sergasctl itself is left out.
func fileHolders(path string) []holder {
	want := map[string]bool{path: true, path + "-wal": true, path + "-shm": true}
	procs, err := os.ReadDir(procFS)
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []holder
	for i, p := range procs {
		if i >= maxProcs {
			break
		}
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join(procFS, p.Name(), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for j, fd := range fds {
			if j >= maxFDsPerProc {
				break
			}
			target, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil || !want[target] {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(procFS, p.Name(), "comm"))
			out = append(out, holder{PID: pid, Command: strings.TrimSpace(string(comm))})
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// describeHolders is holders for a message: "pid 12 (sergas), pid 40 (sergas-audit)".
func describeHolders(hs []holder) string {
	if len(hs) == 0 {
		return "none but sergasctl"
	}
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = "pid " + strconv.Itoa(h.PID) + " (" + h.Command + ")"
	}
	return strings.Join(parts, ", ")
}
