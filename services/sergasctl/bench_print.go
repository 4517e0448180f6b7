package sergasctl

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machineInfo names the machine a bench ran on, as the README's tables do.
type machineInfo struct {
	OS       string `json:"os"`     // kernel name, release and architecture (uname -srm)
	CPU      string `json:"cpu"`    // model name from /proc/cpuinfo
	CPUs     int    `json:"cpus"`   // logical CPUs Go sees
	MemBytes int64  `json:"memory"` // MemTotal
	Go       string `json:"go"`
	// LoadStart and LoadEnd are the 1, 5 and 15 minute load averages when the bench started and ended:
	// on a shared machine they say how much else was running.
	LoadStart string `json:"load_average_start,omitempty"`
	LoadEnd   string `json:"load_average_end,omitempty"`
}

func (m machineInfo) String() string {
	s := fmt.Sprintf("%s, %s (%d CPUs)", m.OS, m.CPU, m.CPUs)
	if m.MemBytes > 0 {
		s += ", " + bytes(m.MemBytes)
	}
	s += ", " + m.Go
	if m.LoadStart != "" {
		s += fmt.Sprintf("; load average %s at the start, %s at the end", m.LoadStart, m.LoadEnd)
	}
	return s
}

// loadAverage is the 1, 5 and 15 minute load averages ("" where /proc/loadavg is missing).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// describeMachine reads what it can; unknown parts are "unknown", never an error.
func describeMachine() machineInfo {
	m := machineInfo{OS: runtime.GOOS + " " + runtime.GOARCH, CPU: "unknown", CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadStart: loadAverage()}
	ostype, err1 := os.ReadFile("/proc/sys/kernel/ostype")
	release, err2 := os.ReadFile("/proc/sys/kernel/osrelease")
	if err1 == nil && err2 == nil {
		m.OS = strings.TrimSpace(string(ostype)) + " " + strings.TrimSpace(string(release)) + " " + runtime.GOARCH
	}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64); err == nil {
			m.MemBytes = kb * 1024
		}
	}
	return m
}

// procField is the value of the first "name: value" line of a /proc file ("" when absent).
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for lines := 0; sc.Scan() && lines < 10000; lines++ {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// describeBackend reads the server version and the durability settings the measurements ran under.
func describeBackend(ctx context.Context, s *scratchSet, info *backendInfo) error {
	h := s.dbs["audit"].h
	if h.SQLite != nil {
		var version, journal string
		var sync int
		w := h.SQLite.Write
		if err := w.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
			return err
		}
		if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
			return err
		}
		if err := w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			return err
		}
		syncName := map[int]string{0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[sync]
		info.Version = "SQLite " + version
		info.Settings = fmt.Sprintf("journal_mode=%s, synchronous=%s (the services' settings)", journal, syncName)
		return nil
	}
	var version, fsync, syncCommit string
	err := h.Postgres.Pool.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')").
		Scan(&version, &fsync, &syncCommit)
	if err != nil {
		return err
	}
	info.Version = "PostgreSQL " + version
	info.Settings = fmt.Sprintf("fsync=%s, synchronous_commit=%s", fsync, syncCommit)
	return nil
}

func printBench(c *cmdCtx, doc *benchDoc) {
	w := c.Stdout
	fmt.Fprintf(w, "sergasctl bench: the original guide's table through the services' stores, %d caller, %d run(s) of %d call(s) per operation, interleaved, after %d warm-up call(s)\n",
		doc.Callers, doc.Runs, doc.N, doc.Warmup)
	fmt.Fprintf(w, "machine: %s\n", doc.Machine)
	for _, b := range doc.Backends {
		p := b.Populated
		fmt.Fprintf(w, "%-8s  %s, %s; scratch databases at %s\n", b.Backend, b.Version, b.Settings, b.Where)
		fmt.Fprintf(w, "          populated in %.1fs: %d audit events, %d webhook events with %d deliveries (%d subscriptions), %d token connections; ANALYZE\n",
			b.PopulateS, p.AuditEvents, p.WebhookEvents, p.WebhookDeliveries, p.Subscriptions, p.TokenConnections)
	}
	fmt.Fprintf(w, "\nms; p50, p99 and mean: median of the runs (range); rows: read or written per call, mean; worst against the original first\n\n")
	fmt.Fprintf(w, "%-20s %-8s %7s %6s %7s %-22s %-22s %-22s %8s %8s %8s\n", "operation", "backend", "calls", "rows", "min", "p50", "p99", "mean", "max", "original", "p50/orig")
	for _, r := range doc.Results {
		fmt.Fprintf(w, "%-20s %-8s %7d %6.1f %7.3f %-22s %-22s %-22s %8.3f %8.2f %8.2f\n", r.Operation, r.Backend, r.Count, r.RowsPerCall, r.MinMS,
			spreadText(r.P50), spreadText(r.P99), spreadText(r.Mean), r.MaxMS, r.OriginalMS, r.Ratio)
	}
	fmt.Fprintf(w, "\nworst against the original: %s\n\nWhat each operation is here:\n", doc.Worst)
	for _, op := range doc.Ops {
		fmt.Fprintf(w, "  %-20s %s\n", op.Name, op.Here)
	}
	fmt.Fprintf(w, "%s\n", doc.Note)
}

func spreadText(s spread) string {
	if s.Min == s.Max {
		return fmt.Sprintf("%.3f", s.Median)
	}
	return fmt.Sprintf("%.3f (%.3f–%.3f)", s.Median, s.Min, s.Max)
}
