package postgres

import (
	"context"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

var _ store.BacklogCounter = (*Store)(nil)

// EventBacklog implements store.BacklogCounter.
func (s *Store) EventBacklog(ctx context.Context, atMost int64) (int64, error) {
	return db.PostgresQueryRow(ctx, s.db, store.BacklogQuery,
		[]any{int16(store.StatusPending), int16(store.StatusFailed), atMost},
		func(row db.Scanner) (int64, error) {
			var n int64
			return n, row.Scan(&n)
		})
}
