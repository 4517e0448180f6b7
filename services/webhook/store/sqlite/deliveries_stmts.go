package sqlite

import (
	"context"
	"database/sql"
	"runtime"
	"sync"
	"weak"

	"github.com/sergas/core/internal/db"
)

// stmtCache holds the statements of the delivery transactions, prepared on one database's writer.
// Parsing was a third of an ack's CPU with this driver (SQLite compiled to WebAssembly): prepared once, a
// statement is only bound and stepped in each transaction (Tx.StmtContext reuses the writer
// connection's prepared statement, and prepares it again on that connection if it was replaced).
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt // nil until prepared
}

// cachedQueries are the statements every claim and settle runs.
var cachedQueries = []string{subscriptionGet, deliveriesDue, deliveryGet, deliveriesByID, deliveryUpdate, attemptInsert, eventsSettle, eventsByID}

// stmtCaches maps a database, weakly, to its cache: the Store has no field for one, and an entry goes
// when its database is collected.
var stmtCaches sync.Map // weak.Pointer[db.SQLiteDB] -> *stmtCache

// prepared returns d's statement cache, preparing it on first use. It must not run inside a write
// transaction: preparing takes the writer connection, which that transaction holds.
func prepared(ctx context.Context, d *db.SQLiteDB) (*stmtCache, error) {
	key := weak.Make(d)
	v, ok := stmtCaches.Load(key)
	if !ok {
		var loaded bool
		if v, loaded = stmtCaches.LoadOrStore(key, &stmtCache{}); !loaded {
			runtime.AddCleanup(d, func(k weak.Pointer[db.SQLiteDB]) { stmtCaches.Delete(k) }, key)
		}
	}
	c := v.(*stmtCache)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stmts != nil {
		return c, nil
	}
	stmts := make(map[string]*sql.Stmt, len(cachedQueries))
	for _, q := range cachedQueries {
		st, err := d.Write.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range stmts {
				st.Close()
			}
			return nil, err // tried again next time
		}
		stmts[q] = st
	}
	c.stmts = stmts
	return c, nil
}

// stmt returns query for tx: its prepared statement when cached, else the query prepared in tx. The
// cache is complete once prepared returned it: reading stmts needs no lock.
func (c *stmtCache) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, query)
}
