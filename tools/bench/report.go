package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report collects every run and prints the Markdown for the README.
type report struct {
	callers []int
	runs    map[pointKey][]result
	bare    []bareResult
}

type pointKey struct {
	backend, call string
	callers       int
}

func (r *report) add(backend, call string, callers int, res result) {
	if r.runs == nil {
		r.runs = map[pointKey][]result{}
	}
	k := pointKey{backend, call, callers}
	r.runs[k] = append(r.runs[k], res)
}

// spread is a median with its min and max.
type spread struct{ min, med, max float64 }

func spreadOf(xs []float64) spread {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return spread{}
	}
	// With an even count the median is the lower middle one: a value that was really measured.
	return spread{min: s[0], med: s[(len(s)-1)/2], max: s[len(s)-1]}
}

func pick(rs []result, f func(result) float64) spread {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return spreadOf(xs)
}

// ratio compares call with the no-op run by run (run i of each was measured back to back).
func (r *report) ratio(backend, call string, c int) spread {
	got, base := r.runs[pointKey{backend, call, c}], r.runs[pointKey{backend, callNoop, c}]
	var xs []float64
	for i := range min(len(got), len(base)) {
		xs = append(xs, got[i].PerSecond/base[i].PerSecond)
	}
	s := spreadOf(xs)
	// The headline figure is the ratio of the medians; the range is that of the paired runs.
	if g, b := pick(got, perSecond).med, pick(base, perSecond).med; b > 0 {
		s.med = g / b
	}
	return s
}

func perSecond(r result) float64 { return r.PerSecond }

// backendsWorstFirst orders backends by their uncached throughput against the no-op, lowest first.
func (r *report) backendsWorstFirst() []string {
	var bs []string
	worst := map[string]float64{}
	for k := range r.runs {
		if k.call != callUncached {
			continue
		}
		if !slices.Contains(bs, k.backend) {
			bs = append(bs, k.backend)
			worst[k.backend] = 1e9
		}
		worst[k.backend] = min(worst[k.backend], r.ratio(k.backend, k.call, k.callers).med)
	}
	slices.SortFunc(bs, func(a, b string) int {
		switch {
		case worst[a] < worst[b]:
			return -1
		case worst[a] > worst[b]:
			return 1
		}
		return strings.Compare(a, b)
	})
	return bs
}

func (r *report) print(w io.Writer, o options, took time.Duration) {
	bs := r.backendsWorstFirst()
	var dbs []string
	for _, b := range r.bare {
		switch b.backend {
		case "sqlite":
			dbs = append(dbs, b.r.version+" (ncruces, WAL, synchronous=NORMAL)")
		case "postgres":
			dbs = append(dbs, b.r.version+" on loopback (fsync on)")
		}
	}
	fmt.Fprintf(w, "\nMeasured %s on %s; Go %s; %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), strings.TrimPrefix(runtime.Version(), "go"), strings.Join(dbs, "; "))
	fmt.Fprintf(w, "Server and load generator are separate processes on the same cores, talking gRPC over loopback (one connection). "+
		"Both calls go through the same API-key authentication, token:read scope check, per-credential rate limiter "+
		"(on: the bench key's read class allowed %d calls/s, burst %d, via RATE_LIMIT_READ_PER_SECOND/_BURST; never reached) and interceptors. "+
		"Each point: %d runs of %s after a %s warm-up, interleaved; median (min–max). "+
		"\"vs no-op\" is the ratio of median throughputs (range: run by run); CPU is the user+system time per call of the server process and of the load generator (medians; PostgreSQL's own processes not included). Whole run: %s.\n\n",
		benchRate, benchRate, o.reps, o.d, o.warmup, took.Round(time.Second))
	fmt.Fprintln(w, "| call | backend | callers | calls/s | p50 ms | p99 ms | vs no-op | CPU µs/call: server + client |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	for _, call := range []string{callUncached, callCached, callNoop} {
		for _, b := range bs {
			for _, c := range r.callers {
				rs := r.runs[pointKey{b, call, c}]
				if len(rs) == 0 {
					continue
				}
				vs := "1"
				if call != callNoop {
					rt := r.ratio(b, call, c)
					vs = fmt.Sprintf("**%.2f** (%.2f–%.2f)", rt.med, rt.min, rt.max)
				}
				tp := pick(rs, perSecond)
				fmt.Fprintf(w, "| %s | %s | %d | **%.0f** (%.0f–%.0f) | %s | %s | %s | %.0f + %.0f |\n", call, b, c, tp.med, tp.min, tp.max,
					ms(pick(rs, func(r result) float64 { return r.P50ms })), ms(pick(rs, func(r result) float64 { return r.P99ms })), vs,
					pick(rs, func(r result) float64 { return r.ServerCPU }).med, pick(rs, func(r result) float64 { return r.ClientCPU }).med)
			}
		}
	}
	if len(r.bare) > 0 {
		fmt.Fprintln(w, "\nLike for like with the original system's token lookup (no RPC, no cache): the store read GetAccessToken makes "+
			"(`AccessTokenGet`), called directly by one caller on the same database, without opening the sealed token (`BenchmarkOpen`: under 1 µs).")
		fmt.Fprintln(w, "\n| backend | store read p50 ms | p99 ms | mean ms | original token lookup ms |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
		orig := map[string]string{"sqlite": "0.15", "postgres": "0.23"}
		for _, b := range r.bare {
			fmt.Fprintf(w, "| %s | %.3f | %.3f | %.3f | %s |\n", b.backend, msd(b.r.p50), msd(b.r.p99), msd(b.r.mean), orig[b.backend])
		}
	}
}

func ms(s spread) string {
	return fmt.Sprintf("%.3f (%.3f–%.3f)", s.med, s.min, s.max)
}

func msd(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// machine describes the CPU and memory, from /proc when it is there.
func machine() string {
	model := ""
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(raw), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %d GiB", (kb+512*1024)/(1024*1024))
		}
	}
	if model == "" {
		model = runtime.GOARCH
	}
	return fmt.Sprintf("%d vCPU %s%s", runtime.NumCPU(), model, mem)
}
