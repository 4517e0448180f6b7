package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

var (
	// subscriptionLock serialises the rotations of one subscription's secret: the second waits for the
	// first to commit and then reads (READ COMMITTED) the secrets the first wrote.
	subscriptionLock    = store.SubscriptionForUpdateQuery(text)
	subscriptionBacklog = store.SubscriptionBacklogsQuery(text)
)

// timeArg is a time argument as pgx binds it (timestamptz).
func timeArg(t time.Time) any { return t }

// BacklogRows is one statement: one snapshot.
func (d *deliveryDriver) BacklogRows(ctx context.Context) ([]store.Backlog, error) {
	return db.PostgresQueryAll(ctx, d.db, subscriptionBacklog, nil, func(row db.Scanner) (store.Backlog, error) {
		var b store.Backlog
		var oldest *time.Time
		if err := row.Scan(&b.SubscriptionID, &b.Pending, &b.Leased, &b.Failed, &b.DeadLetter, &oldest); err != nil {
			return b, err
		}
		if oldest != nil {
			b.OldestUndelivered = oldest.UTC()
		}
		return b, nil
	})
}

func (t *deliveryTx) SubscriptionForUpdate(ctx context.Context, id string) (*store.Subscription, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	sub, err := scanSubscription(t.tx.QueryRow(ctx, subscriptionLock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("subscription %s not found", id)
	}
	return sub, err
}

// SubscriptionSecretsUpdate queues the update (see deliveryTx): the row is locked, nothing reads it back.
func (t *deliveryTx) SubscriptionSecretsUpdate(ctx context.Context, s *store.Subscription) error {
	args := append([]any{s.ID}, store.SecretArgs(s.Push, timeArg)...)
	t.pending.Queue(store.SubscriptionSecretsSQL, append(args, s.UpdateTime)...)
	return nil
}
