package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// auditReport collects the audit suite's runs and prints its Markdown.
type auditReport struct {
	o     options
	runs  map[auditKeyT][]result
	seeds []seedResult
}

// auditKeyT names one point; noopOf is the call a no-op run was measured beside.
type auditKeyT struct {
	backend, call, noopOf string
	callers               int
}

type seedResult struct {
	backend string
	info    seedInfo
}

func (r *auditReport) add(backend, call, noopOf string, callers int, res result) {
	if r.runs == nil {
		r.runs = map[auditKeyT][]result{}
	}
	k := auditKeyT{backend, call, noopOf, callers}
	r.runs[k] = append(r.runs[k], res)
}

func events(r result) float64 { return r.PerSecond * float64(max(1, r.PerCall)) }

// perEvent is a CPU figure per call turned into one per event.
func perEvent(f func(result) float64) func(result) float64 {
	return func(r result) float64 { return f(r) / float64(max(1, r.PerCall)) }
}

// targets are issue #8's throughput targets for this machine, in events/s.
var targets = map[auditKeyT]float64{
	{backend: "sqlite", call: callRecord}: 15000, {backend: "postgres", call: callRecord}: 8000,
	{backend: "sqlite", call: callRecords}: 60000, {backend: "postgres", call: callRecords}: 40000,
}

// backendsWorstFirst orders backends by RecordEvent's throughput against the no-op, lowest first.
func (r *auditReport) backendsWorstFirst() []string {
	worst := map[string]float64{}
	for k, rs := range r.runs {
		if k.call != callRecord {
			continue
		}
		base := r.runs[auditKeyT{k.backend, callAuditNoop, callRecord, k.callers}]
		ratio := pick(rs, perSecond).med / max(1, pick(base, perSecond).med)
		if w, ok := worst[k.backend]; !ok || ratio < w {
			worst[k.backend] = ratio
		}
	}
	bs := slices.Clone(r.o.backends)
	slices.SortStableFunc(bs, func(a, b string) int {
		switch {
		case worst[a] < worst[b]:
			return -1
		case worst[a] > worst[b]:
			return 1
		}
		return 0
	})
	return bs
}

func (r *auditReport) print(w io.Writer, took time.Duration) {
	o := r.o
	var dbs []string
	for _, s := range r.seeds {
		switch s.backend {
		case "sqlite":
			dbs = append(dbs, s.info.version+" (ncruces, WAL, synchronous=NORMAL)")
		case "postgres":
			dbs = append(dbs, s.info.version+" on loopback (fsync on)")
		}
	}
	fmt.Fprintf(w, "\n### Audit service\n\nMeasured %s on %s; Go %s; %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), strings.TrimPrefix(runtime.Version(), "go"), strings.Join(dbs, "; "))
	fmt.Fprintf(w, "The audit service as sergas-audit serves it (production mode, API-key authentication, the per-credential limiter on at %d calls/s per class, never reached; "+
		"redaction on, hash chaining, group commit at its defaults) in one process, the load generator in another, gRPC over loopback (one connection). "+
		"The no-op needs audit:write, as RecordEvent does, so it pays the same authentication, scope check and write-class limiter; "+
		"each point alternates the call with the no-op, %d runs of %s after a %s warm-up: median (min–max). "+
		"Every event carries its own idempotency key, a session, a request id and metadata with one value to redact. "+
		"Appends go to a new, empty store. CPU is user+system time per event of the server, the load generator and (PostgreSQL) every postgres process. Whole run: %s.\n\n",
		benchRate, o.reps, o.d, o.warmup, took.Round(time.Second))
	bs := r.backendsWorstFirst()
	fmt.Fprintln(w, "| call | backend | callers | events/s | target | calls/s | p50 ms | p99 ms | calls/s vs no-op | CPU µs/event: server + client (+ PostgreSQL) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, call := range []string{callRecord, callRecords} {
		for _, b := range bs {
			for _, c := range r.callersOf(b, call, "") {
				rs := r.runs[auditKeyT{b, call, "", c}]
				base := r.runs[auditKeyT{b, callAuditNoop, call, c}]
				ev, tp := pick(rs, events), pick(rs, perSecond)
				target := "—"
				if t, ok := targets[auditKeyT{backend: b, call: call}]; ok && c > 1 {
					verdict := "not met"
					if ev.med >= t {
						verdict = "met"
					}
					target = fmt.Sprintf("%.0f: %s", t, verdict)
				}
				var ratios []float64
				for i := range min(len(rs), len(base)) {
					ratios = append(ratios, rs[i].PerSecond/base[i].PerSecond)
				}
				rt := spreadOf(ratios)
				rt.med = tp.med / max(1, pick(base, perSecond).med)
				name := call
				if call == callRecords {
					name = fmt.Sprintf("RecordEvents of %d", o.audit.batch)
				}
				fmt.Fprintf(w, "| %s | %s | %d | **%.0f** (%.0f–%.0f) | %s | %.0f | %s | %s | %.2f (%.2f–%.2f) | %s |\n", name, b, c, ev.med, ev.min, ev.max, target, tp.med,
					ms(pick(rs, func(r result) float64 { return r.P50ms })), ms(pick(rs, func(r result) float64 { return r.P99ms })),
					rt.med, rt.min, rt.max, cpu(rs, b))
			}
		}
	}
	for _, call := range []string{callRecord, callRecords} {
		for _, b := range bs {
			for _, c := range r.callersOf(b, callAuditNoop, call) {
				rs := r.runs[auditKeyT{b, callAuditNoop, call, c}]
				tp := pick(rs, perSecond)
				fmt.Fprintf(w, "| no-op (beside %s) | %s | %d | — | — | **%.0f** (%.0f–%.0f) | %s | %s | 1 | %s per call |\n", call, b, c, tp.med, tp.min, tp.max,
					ms(pick(rs, func(r result) float64 { return r.P50ms })), ms(pick(rs, func(r result) float64 { return r.P99ms })), cpu(rs, b))
			}
		}
	}
	if len(r.seeds) == 0 {
		return
	}
	var seeded []string
	for _, s := range r.seeds {
		how := "seeded earlier and reused"
		if s.info.took > 0 {
			how = fmt.Sprintf("seeded by this run in %s", s.info.took.Round(time.Second))
		}
		seeded = append(seeded, fmt.Sprintf("%s: %s", s.backend, how))
	}
	fmt.Fprintf(w, "\nListEvents, page_size 100, on a store of %d events (1,000 actors, sessions of 100 events spread over 100,000 sequence numbers; "+
		"hash-chained from sequence 1, bulk-loaded and then indexed by the migrations' own definitions; %s). "+
		"By actor and without a filter each call starts after a random sequence number; by session each call reads one random session whole. "+
		"Every call must return a full page of 100 events. Target: p99 under 5 ms.\n\n", r.o.audit.events, strings.Join(seeded, "; "))
	fmt.Fprintln(w, "| query | backend | callers | calls/s | p50 ms | p99 ms | p99 < 5 ms | CPU µs/call: server + client (+ PostgreSQL) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	for _, call := range []string{callListActor, callListSession, callListAll} {
		for _, b := range bs {
			for _, c := range r.callersOf(b, call, "") {
				rs := r.runs[auditKeyT{b, call, "", c}]
				tp, p99 := pick(rs, perSecond), pick(rs, func(r result) float64 { return r.P99ms })
				verdict := "no"
				if p99.med < 5 {
					verdict = "yes"
				}
				fmt.Fprintf(w, "| %s | %s | %d | **%.0f** (%.0f–%.0f) | %s | %s | %s | %s |\n", call, b, c, tp.med, tp.min, tp.max,
					ms(pick(rs, func(r result) float64 { return r.P50ms })), ms(p99), verdict, cpu(rs, b))
			}
		}
	}
}

// callersOf lists the caller counts measured for a call, in increasing order.
func (r *auditReport) callersOf(backend, call, noopOf string) []int {
	var cs []int
	for k := range r.runs {
		if k.backend == backend && k.call == call && k.noopOf == noopOf {
			cs = append(cs, k.callers)
		}
	}
	slices.Sort(cs)
	return cs
}

// cpu is the median CPU per event of the server, the load generator and, on PostgreSQL, its processes.
func cpu(rs []result, backend string) string {
	s := fmt.Sprintf("%.0f + %.0f", pick(rs, perEvent(func(r result) float64 { return r.ServerCPU })).med,
		pick(rs, perEvent(func(r result) float64 { return r.ClientCPU })).med)
	if backend == "postgres" {
		s += fmt.Sprintf(" (+ %.0f)", pick(rs, perEvent(func(r result) float64 { return r.DBCPU })).med)
	}
	return s
}
