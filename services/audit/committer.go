package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/groupcommit"
	"github.com/sergas/core/services/audit/store"
)

// GroupCommit bounds how RecordEvent calls are gathered into one transaction.
type GroupCommit struct {
	// MaxEvents is the most events one transaction appends; 1 appends each call on its own.
	MaxEvents int
	// Window is how long the committer waits for a batch to fill while calls arrive together, that is
	// after a batch of more than one, until a window passes with no call; calls that come one at a
	// time are committed at once.
	Window time.Duration
}

// DefaultGroupCommit is the group commit without configuration.
var DefaultGroupCommit = GroupCommit{MaxEvents: 256, Window: 2 * time.Millisecond}

// groupCommitWorker names the committer's worker (logs, restart metric).
const groupCommitWorker = "audit.group_commit"

// committer gathers concurrent appends and writes each gathered batch in one transaction of the store's
// append algorithm: one commit (one fsync on SQLite, one round of the chain head's lock on PostgreSQL)
// for many events, each caller answered after that commit with its own result. The algorithm is
// internal/groupcommit's (shared with the webhook ingress); a refused event fails alone (db.Splittable),
// and while the worker does not run each call is appended on its own.
type committer = groupcommit.Committer[store.Pending, store.Result]

// newCommitter returns the group committer over st's append. Batches commit one at a time: they take
// turns on the chain head's lock anyway.
func newCommitter(st store.Store, cfg GroupCommit, log *slog.Logger) *committer {
	return groupcommit.New(groupCommitWorker, groupcommit.Config{MaxBatch: cfg.MaxEvents, Window: cfg.Window}, st.Append, db.Splittable, log)
}

// appendOne appends p in a transaction of its own (a server without the service's committer).
func appendOne(ctx context.Context, st store.Store, p store.Pending) (store.Result, error) {
	res, err := st.Append(ctx, []store.Pending{p})
	if err != nil {
		return store.Result{}, err
	}
	return res[0], nil
}
