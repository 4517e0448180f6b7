package sqlite

import (
	"context"
	"database/sql"
	"math"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
)

var _ store.ChannelStore = (*Store)(nil)

// channelSelect reads the events column as it is stored, JSON text.
var channelSelect = store.ChannelSelect("events")

// ChannelCreate implements store.ChannelStore.
func (s *Store) ChannelCreate(ctx context.Context, c *store.Channel) error {
	if err := store.CheckChannelCreate(c); err != nil {
		return err
	}
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlq.Rebind(store.ChannelInsertSQL), c.ID, c.Source, c.ConnectionID, store.StringsJSON(c.Events),
			c.NotifyURL, c.ReturnAffectedFieldValues, c.SealedToken, int32(c.State), c.ExpireTime.UnixMicro(), c.CreateTime.UnixMicro(),
			c.UpdateTime.UnixMicro(), micros(c.RenewTime), c.FailedRenewals, c.LastError)
		return err
	})
	if err != nil {
		if err = db.SQLiteError(err); errs.KindOf(err) == errs.KindAlreadyExists {
			return errs.New(errs.KindAlreadyExists, "channel %s already exists", c.ID)
		}
		return err
	}
	store.NormaliseChannelTimes(c)
	c.Version = 1
	return nil
}

// ChannelGet implements store.ChannelStore.
func (s *Store) ChannelGet(ctx context.Context, id string) (*store.Channel, error) {
	c, err := scanChannel(s.db.Read.QueryRowContext(ctx, sqlq.Rebind(store.ChannelGetQuery(channelSelect)), id))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("channel %s not found", id)
	}
	return c, db.SQLiteError(err)
}

// ChannelList implements store.ChannelStore.
func (s *Store) ChannelList(ctx context.Context, p store.ChannelListParams) ([]*store.Channel, error) {
	if p.Limit <= 0 {
		return nil, errs.Invalid("channel list limit must be positive")
	}
	q, args := store.ChannelListQueryAt(channelSelect, p, func(t time.Time) any { return t.UnixMicro() })
	return db.SQLiteQueryAll(ctx, s.db, q, args, scanChannel)
}

// ChannelUpdate implements store.ChannelStore. The single writer runs one update at a time, so of two
// made from the same version the second finds the version moved on.
func (s *Store) ChannelUpdate(ctx context.Context, c *store.Channel) error {
	if err := store.CheckChannelUpdate(c); err != nil {
		return err
	}
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlq.Rebind(store.ChannelUpdateSQL), c.ID, c.Version, int32(c.State),
			c.ExpireTime.UnixMicro(), c.UpdateTime.UnixMicro(), micros(c.RenewTime), c.FailedRenewals, c.LastError)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var v int64
		switch err := tx.QueryRowContext(ctx, sqlq.Rebind(store.ChannelVersionSQL), c.ID).Scan(&v); {
		case err == sql.ErrNoRows:
			return errs.NotFound("channel %s not found", c.ID)
		case err != nil:
			return err
		}
		return errs.New(errs.KindConflict, "channel %s changed (version %d, not %d): read it again", c.ID, v, c.Version)
	})
	if err != nil {
		return db.SQLiteError(err)
	}
	store.NormaliseChannelTimes(c)
	c.Version++
	return nil
}

// ChannelDelete implements store.ChannelStore.
func (s *Store) ChannelDelete(ctx context.Context, id string) error {
	return db.SQLiteError(s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlq.Rebind(store.ChannelDeleteSQL), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return errs.NotFound("channel %s not found", id)
	}))
}

// ChannelsDue implements store.ChannelStore.
func (s *Store) ChannelsDue(ctx context.Context, t time.Time, after store.DueCursor, limit int) ([]*store.Channel, error) {
	if limit <= 0 {
		return nil, errs.Invalid("due channel limit must be positive")
	}
	return db.SQLiteQueryAll(ctx, s.db, store.ChannelsDueQuery(channelSelect), []any{t.UnixMicro(), afterMicros(after.ExpireTime), after.ID, limit}, scanChannel)
}

// ChannelCounts implements store.ChannelStore.
func (s *Store) ChannelCounts(ctx context.Context) (map[store.ChannelState]int, error) {
	type count struct {
		state store.ChannelState
		n     int
	}
	rows, err := db.SQLiteQueryAll(ctx, s.db, store.ChannelCountsSQL, nil, func(row db.Scanner) (count, error) {
		var c count
		return c, row.Scan(&c.state, &c.n)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[store.ChannelState]int, len(rows))
	for _, c := range rows {
		out[c.state] = c.n
	}
	return out, nil
}

func scanChannel(row db.Scanner) (*store.Channel, error) {
	var c store.Channel
	var events string
	var expire, created, updated int64
	var renewed sql.NullInt64
	if err := row.Scan(&c.ID, &c.Source, &c.ConnectionID, &events, &c.NotifyURL, &c.ReturnAffectedFieldValues, &c.SealedToken,
		&c.State, &expire, &created, &updated, &renewed, &c.FailedRenewals, &c.LastError, &c.Version); err != nil {
		return nil, err
	}
	var err error
	if c.Events, err = store.ParseStrings(events); err != nil {
		return nil, err
	}
	c.ExpireTime, c.CreateTime, c.UpdateTime = time.UnixMicro(expire).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if renewed.Valid {
		c.RenewTime = time.UnixMicro(renewed.Int64).UTC()
	}
	return &c, nil
}

// micros is the column value of an optional time: NULL when zero.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// afterMicros is a DueCursor's time as stored: the zero time (the first page) as the smallest value, so
// that every channel sorts after it.
func afterMicros(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixMicro()
}
