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

var _ store.ChannelStore = (*Store)(nil)

// channelSelect reads the jsonb events as text, the form both backends parse.
var channelSelect = store.ChannelSelect("events::text")

// writeTx is the transaction every channel change runs in. READ COMMITTED is what ChannelUpdate relies
// on: an UPDATE that waited for a concurrent one to commit re-checks "version = $2" against the new row,
// finds it moved on and changes nothing, so of two updates from one version exactly one wins.
var writeTx = pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}

// ChannelCreate implements store.ChannelStore.
func (s *Store) ChannelCreate(ctx context.Context, c *store.Channel) error {
	if err := store.CheckChannelCreate(c); err != nil {
		return err
	}
	err := s.db.TxWith(ctx, writeTx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, store.ChannelInsertSQL, c.ID, c.Source, c.ConnectionID, store.StringsJSON(c.Events), c.NotifyURL,
			c.ReturnAffectedFieldValues, c.SealedToken, int16(c.State), c.ExpireTime, c.CreateTime, c.UpdateTime,
			optionalTime(c.RenewTime), c.FailedRenewals, c.LastError)
		return err
	})
	if errs.KindOf(err) == errs.KindAlreadyExists {
		return errs.New(errs.KindAlreadyExists, "channel %s already exists", c.ID)
	}
	if err != nil {
		return err
	}
	store.NormaliseChannelTimes(c)
	c.Version = 1
	return nil
}

// ChannelGet implements store.ChannelStore.
func (s *Store) ChannelGet(ctx context.Context, id string) (*store.Channel, error) {
	c, err := db.PostgresQueryRow(ctx, s.db, store.ChannelGetQuery(channelSelect), []any{id}, scanChannel)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("channel %s not found", id)
	}
	return c, err
}

// ChannelList implements store.ChannelStore.
func (s *Store) ChannelList(ctx context.Context, p store.ChannelListParams) ([]*store.Channel, error) {
	if p.Limit <= 0 {
		return nil, errs.Invalid("channel list limit must be positive")
	}
	q, args := store.ChannelListQueryAt(channelSelect, p, func(t time.Time) any { return t })
	return db.PostgresQueryAll(ctx, s.db, q, args, scanChannel)
}

// ChannelUpdate implements store.ChannelStore (see writeTx for why one of two concurrent updates loses).
func (s *Store) ChannelUpdate(ctx context.Context, c *store.Channel) error {
	if err := store.CheckChannelUpdate(c); err != nil {
		return err
	}
	err := s.db.TxWith(ctx, writeTx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, store.ChannelUpdateSQL, c.ID, c.Version, int16(c.State), c.ExpireTime, c.UpdateTime,
			optionalTime(c.RenewTime), c.FailedRenewals, c.LastError)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var v int64
		switch err := tx.QueryRow(ctx, store.ChannelVersionSQL, c.ID).Scan(&v); {
		case errors.Is(err, pgx.ErrNoRows):
			return errs.NotFound("channel %s not found", c.ID)
		case err != nil:
			return err
		}
		return errs.New(errs.KindConflict, "channel %s changed (version %d, not %d): read it again", c.ID, v, c.Version)
	})
	if err != nil {
		return err
	}
	store.NormaliseChannelTimes(c)
	c.Version++
	return nil
}

// ChannelDelete implements store.ChannelStore.
func (s *Store) ChannelDelete(ctx context.Context, id string) error {
	return s.db.TxWith(ctx, writeTx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, store.ChannelDeleteSQL, id)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		return errs.NotFound("channel %s not found", id)
	})
}

// ChannelsDue implements store.ChannelStore.
func (s *Store) ChannelsDue(ctx context.Context, t time.Time, after store.DueCursor, limit int) ([]*store.Channel, error) {
	if limit <= 0 {
		return nil, errs.Invalid("due channel limit must be positive")
	}
	return db.PostgresQueryAll(ctx, s.db, store.ChannelsDueQuery(channelSelect), []any{t, after.ExpireTime, after.ID, limit}, scanChannel)
}

// ChannelCounts implements store.ChannelStore.
func (s *Store) ChannelCounts(ctx context.Context) (map[store.ChannelState]int, error) {
	type count struct {
		state int16
		n     int64
	}
	rows, err := db.PostgresQueryAll(ctx, s.db, store.ChannelCountsSQL, nil, func(row db.Scanner) (count, error) {
		var c count
		return c, row.Scan(&c.state, &c.n)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[store.ChannelState]int, len(rows))
	for _, c := range rows {
		out[store.ChannelState(c.state)] = int(c.n)
	}
	return out, nil
}

func scanChannel(row db.Scanner) (*store.Channel, error) {
	var c store.Channel
	var events string
	var state int16
	var renewed *time.Time
	if err := row.Scan(&c.ID, &c.Source, &c.ConnectionID, &events, &c.NotifyURL, &c.ReturnAffectedFieldValues, &c.SealedToken,
		&state, &c.ExpireTime, &c.CreateTime, &c.UpdateTime, &renewed, &c.FailedRenewals, &c.LastError, &c.Version); err != nil {
		return nil, err
	}
	var err error
	if c.Events, err = store.ParseStrings(events); err != nil {
		return nil, err
	}
	c.State = store.ChannelState(state)
	c.ExpireTime, c.CreateTime, c.UpdateTime = c.ExpireTime.UTC(), c.CreateTime.UTC(), c.UpdateTime.UTC()
	if renewed != nil {
		c.RenewTime = renewed.UTC()
	}
	return &c, nil
}

// optionalTime is the column value of an optional time: NULL when zero.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
