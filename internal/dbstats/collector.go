package dbstats

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sergas/core/internal/db"
	auditstore "github.com/sergas/core/services/audit/store"
	tokenstore "github.com/sergas/core/services/token/store"
)

// The gauges are read from the database when scraped, as the webhook backlog gauges are
// (services/webhook/consume_metrics.go), so that they cost the request path nothing. A reading is reused
// for Reuse, so that any number of scrapers cost the database one reading per service that often, and a
// reading that has not answered within Timeout is given up: a scrape never waits longer than that for a
// slow or locked database, and reports the series it could not read as absent rather than stale.
const (
	Reuse   = 5 * time.Second
	Timeout = 2 * time.Second
	// maxConnectionPages bounds a scrape's reading of the token connections (500 a page).
	maxConnectionPages = 20
)

var (
	sizeDesc = prometheus.NewDesc("sergas_db_size_bytes",
		"Size of the service's database: the SQLite file (without its WAL), or the PostgreSQL schema's tables with their indexes and TOAST; read at most every 5 s.",
		[]string{"service"}, nil)
	freeDesc = prometheus.NewDesc("sergas_db_free_bytes",
		"SQLite: bytes of free pages in the file (the freelist), returned to the file system by sergasctl maintain; read at most every 5 s.",
		[]string{"service"}, nil)
	walDesc = prometheus.NewDesc("sergas_db_wal_bytes",
		"SQLite: size of the write-ahead log on disk; one that keeps growing is held by a long read transaction (sergasctl health names it); read at most every 5 s.",
		[]string{"service"}, nil)
	headDesc = prometheus.NewDesc("audit_chain_head_sequence",
		"Sequence number of the newest event in the audit chain (0 when empty); read at most every 5 s.", nil, nil)
	checkpointSeqDesc = prometheus.NewDesc("audit_last_checkpoint_sequence",
		"Chain sequence signed by the newest audit checkpoint (absent before the first); read at most every 5 s.", nil, nil)
	checkpointTimeDesc = prometheus.NewDesc("audit_last_checkpoint_timestamp_seconds",
		"Unix time of the newest audit checkpoint (absent before the first); read at most every 5 s.", nil, nil)
	reauthDesc = prometheus.NewDesc("token_connections_needing_reauthorization",
		"Token connections whose refresh was refused for good: a person must authorise them again; read at most every 5 s.", nil, nil)
	connectionsDesc = prometheus.NewDesc("token_connections",
		"Token connections by status (active, needs_reauthorization); read at most every 5 s, at most 10,000 counted.",
		[]string{"status"}, nil)
)

// Source is one service's database, and its store when the service has figures of its own.
type Source struct {
	Service  string // token, audit, webhook: the service label
	SQLite   *db.SQLiteDB
	Postgres *db.PostgresDB
	Audit    auditstore.Store // audit only
	Token    tokenstore.Store // token only
	Log      *slog.Logger
}

// collector is the gauges of every source of the process: one per service in production; tests open
// many, each over its own database, and a source goes when its owner is garbage collected.
type collector struct {
	mu      sync.Mutex
	sources []*source // in registration order
}

var (
	registerOnce sync.Once
	all          = &collector{}
)

// Register adds src to the gauges of the default Prometheus registry (the one /metrics serves) until
// owner, the service that owns the database, is garbage collected. src must not refer to owner.
func Register[T any](owner *T, src Source) {
	registerOnce.Do(func() { prometheus.MustRegister(all) })
	s := newSource(src)
	all.add(s)
	runtime.AddCleanup(owner, func(s *source) { all.remove(s) }, s)
}

func (c *collector) add(s *source) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources = append(c.sources, s)
}

func (c *collector) remove(s *source) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.sources {
		if x == s {
			c.sources = append(c.sources[:i], c.sources[i+1:]...)
			return
		}
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sizeDesc, freeDesc, walDesc, headDesc, checkpointSeqDesc, checkpointTimeDesc, reauthDesc, connectionsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The sources are read concurrently, each within Timeout. A
// service that two sources report (tests that open it twice in one process) is reported once, by the
// newest source that could be read, so that the scrape holds no duplicate series.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	srcs := append([]*source(nil), c.sources...)
	c.mu.Unlock()
	readings := make([]*reading, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readings[i] = s.get(time.Now())
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := len(srcs) - 1; i >= 0; i-- {
		r := readings[i]
		if r == nil || seen[srcs[i].Service] {
			continue
		}
		seen[srcs[i].Service] = true
		r.emit(ch, srcs[i].Service)
	}
}

// reading is one source's figures.
type reading struct {
	size, free, wal float64
	sqlite          bool
	chain           *Chain
	conns           *Connections
}

func (r *reading) emit(ch chan<- prometheus.Metric, service string) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(sizeDesc, r.size, service)
	if r.sqlite {
		gauge(freeDesc, r.free, service)
		gauge(walDesc, r.wal, service)
	}
	if c := r.chain; c != nil {
		gauge(headDesc, float64(c.State.HeadSeq))
		if c.Last != nil {
			gauge(checkpointSeqDesc, float64(c.Last.Sequence))
			gauge(checkpointTimeDesc, float64(c.Last.Time.UnixMicro())/1e6)
		}
	}
	if c := r.conns; c != nil {
		gauge(reauthDesc, float64(c.NeedsReauthorization))
		gauge(connectionsDesc, float64(c.Active), "active")
		gauge(connectionsDesc, float64(c.NeedsReauthorization), "needs_reauthorization")
	}
}

// source is one registered Source and its last reading.
type source struct {
	Source
	mu     sync.Mutex // held while reading: concurrent scrapes wait for one reading
	read   time.Time  // when the last reading was attempted (zero: never)
	got    *reading   // nil when it failed
	failed atomic.Bool
}

func newSource(s Source) *source {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	return &source{Source: s}
}

// get returns the reading of at most Reuse ago, reading again when it is older. A reading that fails
// is not retried before Reuse either (a database that is down is not queried by every scrape), and is
// logged once until a reading succeeds again.
func (s *source) get(now time.Time) *reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.read.IsZero() && now.Sub(s.read) < Reuse && !now.Before(s.read) {
		return s.got
	}
	s.read = now
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	r, err := s.readAll(ctx)
	if err != nil {
		s.got = nil
		if !s.failed.Swap(true) {
			s.Log.Warn("database gauges not read", "service", s.Service, "error", err.Error())
		}
		return nil
	}
	s.failed.Store(false)
	s.got = r
	return r
}

func (s *source) readAll(ctx context.Context) (*reading, error) {
	r := &reading{}
	switch {
	case s.SQLite != nil:
		f, err := ReadSQLite(ctx, s.SQLite.Read, s.SQLite.Path)
		if err != nil {
			return nil, err
		}
		r.sqlite, r.size, r.free, r.wal = true, float64(f.FileBytes), float64(f.FreeBytes), float64(f.WALBytes)
	case s.Postgres != nil:
		f, err := ReadPostgres(ctx, s.Postgres, false)
		if err != nil {
			return nil, err
		}
		r.size = float64(f.SchemaBytes)
	}
	if s.Audit != nil {
		c, err := ReadChain(ctx, s.Audit)
		if err != nil {
			return nil, err
		}
		r.chain = &c
	}
	if s.Token != nil {
		c, err := ReadConnections(ctx, s.Token, maxConnectionPages)
		if err != nil {
			return nil, err
		}
		r.conns = &c
	}
	return r, nil
}
