package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
)

var (
	subscriptionSecrets = sqlq.Rebind(store.SubscriptionSecretsSQL)
	subscriptionBacklog = sqlq.Rebind(store.SubscriptionBacklogsQuery(""))
)

// unixMicro is a time argument as SQLite stores it.
func unixMicro(t time.Time) any { return t.UnixMicro() }

// BacklogRows reads on one read connection: the statement is its own snapshot.
func (d *deliveryDriver) BacklogRows(ctx context.Context) ([]store.Backlog, error) {
	return db.SQLiteQueryAll(ctx, d.db, subscriptionBacklog, nil, func(row db.Scanner) (store.Backlog, error) {
		var b store.Backlog
		var oldest sql.NullInt64
		if err := row.Scan(&b.SubscriptionID, &b.Pending, &b.Leased, &b.Failed, &b.DeadLetter, &oldest); err != nil {
			return b, err
		}
		if oldest.Valid {
			b.OldestUndelivered = time.UnixMicro(oldest.Int64).UTC()
		}
		return b, nil
	})
}

// SubscriptionForUpdate reads the subscription: the single writer's transaction already excludes every
// other writer, so no lock is needed.
func (t deliveryTx) SubscriptionForUpdate(ctx context.Context, id string) (*store.Subscription, error) {
	sub, err := scanSubscription(t.tx.QueryRowContext(ctx, subscriptionGet, id))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("subscription %s not found", id)
	}
	return sub, err
}

func (t deliveryTx) SubscriptionSecretsUpdate(ctx context.Context, s *store.Subscription) error {
	args := append([]any{s.ID}, store.SecretArgs(s.Push, unixMicro)...)
	_, err := t.tx.ExecContext(ctx, subscriptionSecrets, append(args, s.UpdateTime.UnixMicro())...)
	return err
}
