package db

import (
	"context"
	"database/sql"
	"time"
)

// sqliteCheckpointEvery is how often the background checkpointer copies the WAL into the database file.
var sqliteCheckpointEvery = 250 * time.Millisecond

// checkpointer copies committed pages from the WAL into the database file in the background, on a
// connection of its own, so that commits do not: the writer's automatic checkpoint runs inside the commit
// that crosses wal_autocheckpoint, holding the write lock for two fsyncs and a copy of every page changed
// since the last one, which set the p99 of appends. A PASSIVE checkpoint waits for no one: writers keep
// committing meanwhile and readers keep reading, and once the WAL is fully copied the next commit starts
// it over from the beginning, so it stays small. The writer's own automatic checkpoint remains as a
// backstop (at sqliteWALAutocheckpoint pages) should this one fall behind.
type checkpointer struct {
	conn *sql.DB
	stop context.CancelFunc
	done chan struct{}
}

// startCheckpointer runs PASSIVE checkpoints on conn (a one-connection pool that never writes) every
// sqliteCheckpointEvery until stopped.
func startCheckpointer(conn *sql.DB) *checkpointer {
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{conn: conn, stop: stop, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(sqliteCheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// An error (the file went away, a transient lock) is left to the next tick and to the writer's
		// backstop: the checkpoint saves commits work, it is never needed for correctness.
		var busy, frames, copied int64
		_ = c.conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	}
}

// close stops the checkpointer and waits for it, then closes its connection.
func (c *checkpointer) close() error {
	c.stop()
	<-c.done
	return c.conn.Close()
}
