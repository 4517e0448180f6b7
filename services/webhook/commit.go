package webhook

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/groupcommit"
	"github.com/sergas/core/services/webhook/store"
)

// defaultGroupCommit gathers up to 128 concurrent deliveries into one transaction. After a batch of more
// than one it waits up to 2 ms for the next to fill (deliveries are arriving together); a
// delivery that comes alone is committed at once. Batches commit one at a time on both backends.
//
// Why one at a time on PostgreSQL too: four batches committing at once (a commit there waits on a round
// trip and a WAL flush) kept batches small (6 deliveries at 64 senders), and every transaction's
// statements cost PostgreSQL about the same whatever they carry. One at a time, batches hold ~22: signed
// ingests at 64 senders 7,342 → 6,972/s (within 5%) with PostgreSQL's CPU per ingest 73 → 40 µs, and
// delivery end to end (pull, saturation) 2,539 → 3,397/s, the claims and acks growing with the batches
// (10 → 17 deliveries per Ack).
//
// Why 2 ms: through the gateway at 16–64 senders batches held 3–8 deliveries with a 1 ms window, and a
// delivery's share of its batch's insert on SQLite falls steeply with the batch (BenchmarkInsertBatch on
// the shared 2-core machine: about 200 µs at 4, 160 at 8, 100 at 16, 60–80 at 128); the added wait is
// small beside the path's 10–20 ms at that load.
var defaultGroupCommit = groupcommit.Config{MaxBatch: 128, Window: 2 * time.Millisecond}

// batchEvents shows how well deliveries are gathered: many batches of one mean each delivery pays for a
// commit of its own.
var batchEvents = promauto.NewHistogram(prometheus.HistogramOpts{
	Name:    "webhook_group_commit_batch_events",
	Help:    "Deliveries per group-commit transaction attempted (a failed batch's halves included).",
	Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
})

// groupCommitWorker names the committer's worker (logs, restart metric).
const groupCommitWorker = "webhook.group_commit"

// groupStore is the store the server writes through once group commit is on: EventInsert of concurrent
// deliveries are gathered into one EventInsertBatch (one transaction, one fsync on SQLite, one commit
// round trip on PostgreSQL), and each delivery is answered only after that commit, with its own event,
// or the earlier one as a duplicate. Reads go to the store itself.
type groupStore struct {
	store.Store
	c *groupcommit.Committer[*store.Event, store.Inserted]
}

func (g *groupStore) EventInsert(ctx context.Context, e *store.Event) (*store.Event, bool, error) {
	r, err := g.c.Do(ctx, e)
	if err != nil {
		return nil, false, err
	}
	return r.Event, r.Duplicate, nil
}

// withGroupCommit is the Option that turns group commit on (Open does, with defaultGroupCommit). Its
// committer runs as one of the server's workers; without it running, each delivery commits on its own.
func withGroupCommit(cfg groupcommit.Config) Option {
	return func(s *Server) {
		if _, on := s.store.(*groupStore); on {
			return
		}
		st := s.store
		if cfg.Observe == nil {
			cfg.Observe = func(n int) { batchEvents.Observe(float64(n)) }
		}
		s.store = &groupStore{Store: st, c: groupcommit.New(groupCommitWorker, cfg, st.EventInsertBatch, db.Splittable, s.log)}
	}
}

// workers is the server's background work, every replica's and single-replica jobs alike (Service's
// Background runs them): append a job here.
func (s *Server) workers() []app.Worker {
	var ws []app.Worker
	if g, on := s.store.(*groupStore); on {
		// On every replica: each gathers its own deliveries; batches of several replicas take turns on
		// the unique index as single inserts do.
		ws = append(ws, app.Worker{Name: groupCommitWorker, Run: g.c.Run})
	}
	ws = append(ws, s.pushWorkers()...)
	ws = append(ws, s.purgeWorkers()...)
	ws = append(ws, s.outboxWorkers()...)
	return ws
}
