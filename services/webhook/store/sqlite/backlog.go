package sqlite

import (
	"context"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
)

var _ store.BacklogCounter = (*Store)(nil)

// EventBacklog implements store.BacklogCounter.
func (s *Store) EventBacklog(ctx context.Context, atMost int64) (int64, error) {
	var n int64
	err := s.db.Read.QueryRowContext(ctx, sqlq.Rebind(store.BacklogQuery),
		int32(store.StatusPending), int32(store.StatusFailed), atMost).Scan(&n)
	return n, db.SQLiteError(err)
}
