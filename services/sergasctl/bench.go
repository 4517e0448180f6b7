package sergasctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/sergas/core/internal/db"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "measure the original guide's benchmark table through the services' stores, on scratch databases",
		usage: `bench [--backend sqlite|postgres|both] [-n N] [--runs R] [--rows ROWS] [--max-time D] [--json]

Measures the rows of the original system's benchmark table (simple select, token lookup, audit
insert, webhook batch of 10, complex query) through the services' own stores, one caller at a time,
and prints each beside the figure the original guide published. What each row is here is printed
with the table.

It never opens the services' databases. For each backend it makes one scratch database per service
beside the configured one (SQLite: a hidden file .sergasctl_bench_<id>_<service>.db in the directory
of the configured file, or DATA_DIR, so on the same disk; PostgreSQL: a schema
sergasctl_bench_<id>_<service> in the configured database, so on the same server), migrated by the
services' migrations, fills it with ROWS audit events, ROWS webhook events with their deliveries and
ROWS/10 token connections (progress on stderr), runs ANALYZE, and removes it when done, also after
an error or Ctrl-C. Only kill -9 leaves one behind, under those names.

Each operation is called N times per run after a warm-up, in R runs interleaved between operations
and backends; a run also stops after --max-time. The table gives, per operation and backend, the
calls made, the fastest and slowest call, and the median of the runs' p50, p99 and mean with their
range, in ms. It leads with the worst case: rows are ordered by p50 against the original's figure,
worst first. The machine, the SQLite and PostgreSQL versions and their durability settings are named.

--backend defaults to the backend(s) the services are configured on. PostgreSQL needs DATABASE_URL
(or a <SERVICE>_DATABASE_URL) even when the services run on SQLite.`,
		flags: func(fs *flag.FlagSet, o *options) {
			f := &benchFlags{}
			fs.StringVar(&f.backend, "backend", "", "sqlite, postgres or both (default: the backend the services are configured on)")
			fs.IntVar(&f.n, "n", 1000, "calls per operation per run (1-1000000)")
			fs.IntVar(&f.runs, "runs", 3, "runs per operation, interleaved (1-20)")
			fs.IntVar(&f.rows, "rows", 10000, "audit and webhook events stored before measuring (100-10000000)")
			fs.DurationVar(&f.maxTime, "max-time", 30*time.Second, "longest one run of one operation may take (its warm-up a quarter of it)")
			o.cmd = f
		},
		run: runBench,
	})
}

// benchFlags are bench's own flags.
type benchFlags struct {
	backend       string
	n, runs, rows int
	maxTime       time.Duration
}

// benchDoc is bench's result, as --json prints it.
type benchDoc struct {
	Machine  machineInfo    `json:"machine"`
	Backends []*backendInfo `json:"backends"`
	Runs     int            `json:"runs"`
	N        int            `json:"calls_per_run"`
	Warmup   int            `json:"warmup_calls"`
	Callers  int            `json:"callers"`
	Results  []*benchResult `json:"results"`
	Ops      []benchOp      `json:"operations"`
	Note     string         `json:"note"`
	Worst    string         `json:"worst"`
	OK       bool           `json:"ok"`
	Exit     int            `json:"exit_code"`
}

// backendInfo names a backend's server and settings and where its scratch databases were.
type backendInfo struct {
	Backend   string         `json:"backend"`
	Version   string         `json:"version"`
	Settings  string         `json:"settings"`
	Where     string         `json:"scratch_location"`
	Scratch   []string       `json:"scratch"`
	Populated benchPopulated `json:"populated"`
	PopulateS float64        `json:"populate_seconds"`
}

// benchResult is one operation on one backend over all runs.
type benchResult struct {
	Key        string  `json:"key"`
	Operation  string  `json:"operation"`
	Backend    string  `json:"backend"`
	Count      int     `json:"count"`
	MinMS      float64 `json:"min_ms"`
	P50        spread  `json:"p50_ms"`
	P99        spread  `json:"p99_ms"`
	Mean       spread  `json:"mean_ms"`
	MaxMS      float64 `json:"max_ms"`
	OriginalMS float64 `json:"original_ms"`
	Ratio      float64 `json:"p50_vs_original"`
	// RowsPerCall is the mean of the rows a call read or wrote (the complex query's page varies).
	RowsPerCall float64    `json:"rows_per_call"`
	Runs        []benchRun `json:"runs"`
	samples     [][]time.Duration
	rows        int
}

const benchNote = "The original guide does not say whether its figures are means or medians, how many calls it made, nor on what machine; compare them with p50 and mean. One caller, no RPC: the store call alone."

func runBench(ctx context.Context, c *cmdCtx) int {
	f := c.opts.cmd.(*benchFlags)
	switch {
	case c.opts.service != "all":
		return c.usageError("bench", "bench measures the three services' stores together; --service is not used")
	case f.n < 1 || f.n > 1_000_000:
		return c.usageError("bench", "-n must be 1-1000000, not %d", f.n)
	case f.runs < 1 || f.runs > 20:
		return c.usageError("bench", "--runs must be 1-20, not %d", f.runs)
	case f.rows < 100 || f.rows > 10_000_000:
		return c.usageError("bench", "--rows must be 100-10000000, not %d", f.rows)
	case f.maxTime < time.Millisecond || f.maxTime > time.Hour:
		return c.usageError("bench", "--max-time must be 1ms-1h, not %s", f.maxTime)
	}
	targets, err := loadTargets(c.env, "all")
	if err != nil {
		return c.configFail("bench", err)
	}
	var backends []db.Dialect
	switch f.backend {
	case "":
		for _, t := range targets {
			if !slices.Contains(backends, t.DB.Dialect) {
				backends = append(backends, t.DB.Dialect)
			}
		}
		slices.Sort(backends) // postgres before sqlite, as "both" does
	case "sqlite":
		backends = []db.Dialect{db.SQLite}
	case "postgres":
		backends = []db.Dialect{db.Postgres}
	case "both":
		backends = []db.Dialect{db.Postgres, db.SQLite}
	default:
		return c.usageError("bench", "--backend must be sqlite, postgres or both, not %q", f.backend)
	}
	for _, b := range backends {
		if _, err := benchBase(targets, "audit", b, "."); err != nil {
			return c.configFail("bench", err)
		}
	}

	// A closed stdout or stderr ("sergasctl bench | head") must not kill bench before it removes its
	// scratch databases: with SIGPIPE caught, a write to a broken pipe fails instead of ending the
	// process, and bench goes on to clean up.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)

	doc := &benchDoc{Machine: describeMachine(), Runs: f.runs, N: f.n, Warmup: benchWarmup(f.n), Callers: 1, Ops: benchOps, Note: benchNote}
	sets := make([]*scratchSet, len(backends))
	data := make([]*benchData, len(backends))
	// Every scratch database made is removed, whatever happens below; dropAll returns the failures.
	dropAll := func() error {
		var errsOut []error
		for _, s := range sets {
			if s != nil {
				errsOut = append(errsOut, s.drop(ctx)) // drop runs once; later calls return nil
			}
		}
		return errors.Join(errsOut...)
	}
	defer func() {
		if err := dropAll(); err != nil {
			fmt.Fprintf(c.Stderr, "sergasctl bench: %v\n", err)
		}
	}()
	for i, b := range backends {
		sets[i] = &scratchSet{}
		if err := openScratch(ctx, c, targets, b, sets[i]); err != nil {
			return c.fail("bench", err)
		}
		info := &backendInfo{Backend: string(b), Where: sets[i].where, Scratch: sets[i].names}
		doc.Backends = append(doc.Backends, info)
		if err := describeBackend(ctx, sets[i], info); err != nil {
			return c.fail("bench", err)
		}
		fmt.Fprintf(c.Stderr, "bench %s: scratch databases at %s; populating %d audit events, %d webhook events, %d token connections\n",
			b, sets[i].where, f.rows, f.rows, min(max(f.rows/10, 10), 1000))
		d := newBenchData(sets[i])
		data[i] = d
		start := time.Now()
		p := newProgress(c.Stderr, fmt.Sprintf("bench %s: populating", b), "rows", int64(2*f.rows+min(max(f.rows/10, 10), 1000)))
		err := d.populate(ctx, f.rows, p)
		p.Done()
		if err == nil {
			err = analyse(ctx, sets[i])
		}
		if err != nil {
			return c.fail("bench", fmt.Errorf("%s: populate: %w", b, err))
		}
		info.Populated, info.PopulateS = d.populated, time.Since(start).Seconds()
	}

	results, err := measure(ctx, c, f, backends, data)
	if err != nil {
		return c.fail("bench", err)
	}
	// Removed before anything is printed: the result reaches a reader only once nothing is left behind.
	if err := dropAll(); err != nil {
		return c.fail("bench", fmt.Errorf("measured, but the scratch databases were not all removed: %w", err))
	}
	doc.Results = results
	doc.Machine.LoadEnd = loadAverage()
	w := results[0]
	doc.Worst = fmt.Sprintf("%s on %s: p50 %.3f ms against the original's %.2f ms (%.2f×)", w.Operation, w.Backend, w.P50.Median, w.OriginalMS, w.Ratio)
	doc.OK = true
	if c.opts.json {
		_ = writeJSON(c.Stdout, doc)
		return ExitOK
	}
	printBench(c, doc)
	return ExitOK
}

// benchWarmup is how many calls precede the measured ones of an operation, on its first run.
func benchWarmup(n int) int { return min(max(n/10, 10), 500) }

// measure runs every operation on every backend, runs times, interleaved, and returns the results
// ordered worst first against the original.
func measure(ctx context.Context, c *cmdCtx, f *benchFlags, backends []db.Dialect, data []*benchData) ([]*benchResult, error) {
	var results []*benchResult
	type slot struct {
		r    *benchResult
		call func(context.Context) (int, error)
	}
	var slots []slot
	for i, b := range backends {
		for k, op := range benchOps {
			rng := rand.New(rand.NewPCG(uint64(i+1), uint64(k+1)))
			r := &benchResult{Key: op.Key, Operation: op.Name, Backend: string(b), OriginalMS: op.Original[b]}
			results = append(results, r)
			slots = append(slots, slot{r, data[i].call(op, rng)})
		}
	}
	total := int64(f.runs * len(slots) * f.n)
	p := newProgress(c.Stderr, "bench: measuring", "calls", total)
	defer p.Done()
	for run := range f.runs {
		for _, s := range slots {
			if run == 0 {
				if _, _, err := timeCalls(ctx, s.call, benchWarmup(f.n), f.maxTime/4, nil); err != nil {
					return nil, fmt.Errorf("%s on %s: warm-up: %w", s.r.Operation, s.r.Backend, err)
				}
			}
			d, rows, err := timeCalls(ctx, s.call, f.n, f.maxTime, p)
			if err != nil {
				return nil, fmt.Errorf("%s on %s: %w", s.r.Operation, s.r.Backend, err)
			}
			s.r.samples = append(s.r.samples, d)
			s.r.rows += rows
		}
	}
	for _, r := range results {
		for _, d := range r.samples {
			run := summarise(d)
			r.Runs = append(r.Runs, run)
			r.Count += run.Count
		}
		r.MinMS = spreadOf(r.Runs, func(x benchRun) float64 { return x.Min }).Min
		r.MaxMS = spreadOf(r.Runs, func(x benchRun) float64 { return x.Max }).Max
		r.P50 = spreadOf(r.Runs, func(x benchRun) float64 { return x.P50 })
		r.P99 = spreadOf(r.Runs, func(x benchRun) float64 { return x.P99 })
		r.Mean = spreadOf(r.Runs, func(x benchRun) float64 { return x.Mean })
		r.Ratio = r.P50.Median / r.OriginalMS
		r.RowsPerCall = float64(r.rows) / float64(r.Count)
	}
	slices.SortStableFunc(results, func(a, b *benchResult) int {
		switch {
		case a.Ratio > b.Ratio:
			return -1
		case a.Ratio < b.Ratio:
			return 1
		}
		return 0
	})
	return results, nil
}

// timeCalls makes up to n calls, stopping early after budget (at least one call is made), and returns
// each call's duration and the rows they read or wrote.
func timeCalls(ctx context.Context, call func(context.Context) (int, error), n int, budget time.Duration, p *progress) ([]time.Duration, int, error) {
	out := make([]time.Duration, 0, n)
	rows := 0
	deadline := time.Now().Add(budget)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		start := time.Now()
		k, err := call(ctx)
		d := time.Since(start)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
		rows += k
		p.Add(1)
		if i+1 < n && !time.Now().Before(deadline) {
			p.Add(int64(n - i - 1)) // the calls not made, so that the line reaches its end
			break
		}
	}
	return out, rows, nil
}
