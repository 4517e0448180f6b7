package store

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
)

// The channel SQL both backends run as written (SQLite through sqlq.Rebind). Only the argument and
// scan types differ: SQLite keeps times as Unix microseconds and PostgreSQL as timestamptz, and
// PostgreSQL reads the jsonb events through a text cast (see ChannelSelect).

// ChannelInsertSQL stores a channel at version 1; its arguments are the columns of ChannelSelect in order,
// but version.
const ChannelInsertSQL = `INSERT INTO channels (id, source, connection_id, events, notify_url, return_affected_field_values,
		sealed_token, state, expire_time, create_time, update_time, renew_time, failed_renewals, last_error, version)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1)`

// ChannelUpdateSQL changes the mutable fields of channel $1 when its version is still $2: $3 state,
// $4 expire_time, $5 update_time, $6 renew_time, $7 failed_renewals, $8 last_error. No row changed means
// the channel is gone or another change came first; ChannelVersionSQL tells which.
const ChannelUpdateSQL = `UPDATE channels SET state = $3, expire_time = $4, update_time = $5, renew_time = $6,
		failed_renewals = $7, last_error = $8, version = version + 1
	WHERE id = $1 AND version = $2`

// ChannelVersionSQL reads the stored version of channel $1.
const ChannelVersionSQL = `SELECT version FROM channels WHERE id = $1`

// ChannelDeleteSQL removes channel $1.
const ChannelDeleteSQL = `DELETE FROM channels WHERE id = $1`

// ChannelCountsSQL counts channels by state.
const ChannelCountsSQL = `SELECT state, count(*) FROM channels GROUP BY state`

// ChannelSelect is the select list and table of a channel read; events is the backend's expression for
// the events column as JSON text. The columns come in the order the backends scan them.
func ChannelSelect(events string) string {
	return `SELECT id, source, connection_id, ` + events + `, notify_url, return_affected_field_values, sealed_token, state,
		expire_time, create_time, update_time, renew_time, failed_renewals, last_error, version FROM channels`
}

// ChannelGetQuery reads channel $1 with sel (see ChannelSelect).
func ChannelGetQuery(sel string) string { return sel + ` WHERE id = $1` }

// ChannelListQuery returns the SQL and arguments of one page of channels for p, read with sel. Equality on
// source and a range on id, ordered by id, is what the primary key and the (source, id) index serve.
// p.Now is ignored (the stored state is filtered on); ChannelListQueryAt honours it.
func ChannelListQuery(sel string, p ChannelListParams) (string, []any) {
	return ChannelListQueryAt(sel, p, nil)
}

// ChannelListQueryAt is ChannelListQuery honouring p.Now; timeArg is the backend's column value of a
// time.
func ChannelListQueryAt(sel string, p ChannelListParams, timeArg func(time.Time) any) (string, []any) {
	var w sqlq.Where
	w.AddIf(p.Source != "", "source = ?", p.Source)
	switch {
	case p.State == 0:
	case p.Now.IsZero() || timeArg == nil || p.State == ChannelDisabled:
		w.Add("state = ?", int16(p.State)) // a SMALLINT on PostgreSQL
	case p.State == ChannelExpired:
		w.Add("(state = ? OR (state <> "+strconv.Itoa(int(ChannelDisabled))+" AND expire_time <= ?))", int16(p.State), timeArg(p.Now))
	default:
		w.Add("state = ? AND expire_time > ?", int16(p.State), timeArg(p.Now))
	}
	w.AddIf(p.AfterID != "", "id > ?", p.AfterID)
	q := sel + w.String() + " ORDER BY id LIMIT " + w.Arg(p.Limit)
	return q, w.Args
}

// ChannelsDueQuery reads, with sel, at most $4 channels that are not disabled and expire before $1,
// soonest first (ties by id, so that a page is the same on both backends), after the channel that
// expires at $2 with id $3. The disabled state is written
// as a literal: the channels_due index is partial on exactly "state <> 4", and a planner uses a partial
// index only for a query whose WHERE implies its predicate, which a parameter cannot.
func ChannelsDueQuery(sel string) string {
	return sel + ` WHERE state <> ` + strconv.Itoa(int(ChannelDisabled)) + ` AND expire_time < $1 AND (expire_time, id) > ($2, $3) ORDER BY expire_time, id LIMIT $4`
}

// ValidChannelID reports whether id is a Zoho channel id as stored: 1-18 ASCII digits.
func ValidChannelID(id string) bool {
	if len(id) == 0 || len(id) > 18 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// CheckChannelCreate refuses, with errs.KindInvalid, a channel neither backend could store the same way
// (or at all): the database's CHECK constraints would refuse it too, but as an internal error.
func CheckChannelCreate(c *Channel) error {
	if !ValidChannelID(c.ID) {
		return errs.Invalid("channel id must be 1-18 ASCII digits")
	}
	if c.CreateTime.IsZero() {
		return errs.Invalid("channel create time is required")
	}
	if len(c.SealedToken) == 0 {
		return errs.Invalid("channel sealed token is required")
	}
	for name, v := range map[string]string{"source": c.Source, "connection id": c.ConnectionID, "notify URL": c.NotifyURL} {
		if !storableText(v) {
			return errs.Invalid("channel %s must be UTF-8 text without NUL", name)
		}
	}
	for _, e := range c.Events {
		if !storableText(e) {
			return errs.Invalid("channel events must be UTF-8 text without NUL")
		}
	}
	return CheckChannelUpdate(c)
}

// CheckChannelUpdate refuses, with errs.KindInvalid, values of the fields ChannelUpdate writes that the
// database would refuse.
func CheckChannelUpdate(c *Channel) error {
	if c.State < ChannelActive || c.State > ChannelDisabled {
		return errs.Invalid("channel state %d is not one of 1-4", c.State)
	}
	if c.ExpireTime.IsZero() || c.UpdateTime.IsZero() {
		return errs.Invalid("channel expire and update times are required")
	}
	if c.FailedRenewals < 0 {
		return errs.Invalid("channel failed renewals must not be negative")
	}
	if !storableText(c.LastError) {
		// PostgreSQL cannot store NUL in text: the caller cleans what it quotes from elsewhere.
		return errs.Invalid("channel last error must be UTF-8 text without NUL")
	}
	return nil
}

// NormaliseChannelTimes makes c's times what a read returns: UTC, whole microseconds (both backends
// keep microseconds and drop the rest), so that the caller's copy equals the stored channel.
func NormaliseChannelTimes(c *Channel) {
	for _, t := range []*time.Time{&c.ExpireTime, &c.CreateTime, &c.UpdateTime, &c.RenewTime} {
		if !t.IsZero() {
			*t = t.Truncate(time.Microsecond).UTC()
		}
	}
}

// storableText is valid UTF-8 without NUL: what PostgreSQL text and jsonb accept, stored alike by SQLite.
func storableText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
