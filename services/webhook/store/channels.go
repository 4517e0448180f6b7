package store

import (
	"context"
	"time"
)

// ChannelState is where a Zoho CRM notification channel stands (values match the protobuf enum).
type ChannelState int32

// Channel states.
const (
	ChannelActive   ChannelState = 1
	ChannelFailing  ChannelState = 2
	ChannelExpired  ChannelState = 3
	ChannelDisabled ChannelState = 4
)

// Channel is a Zoho CRM notification channel the service enabled and keeps alive. Times are UTC with
// microsecond precision; zero times are stored as NULL.
type Channel struct {
	// ID is Zoho's channel id: 1-18 ASCII digits, compared as text.
	ID           string
	Source       string
	ConnectionID string
	Events       []string
	NotifyURL    string
	// ReturnAffectedFieldValues asks Zoho for the new values of affected fields.
	ReturnAffectedFieldValues bool
	// SealedToken is the channel's token sealed by the service's keyring, bound to the channel id; the
	// store keeps the bytes as they are.
	SealedToken    []byte
	State          ChannelState
	ExpireTime     time.Time
	CreateTime     time.Time
	UpdateTime     time.Time
	RenewTime      time.Time // zero before the first renewal
	FailedRenewals int32
	LastError      string
	// Version grows by one with every change; ChannelUpdate refuses a change made from an older one.
	Version int64
}

// ChannelListParams filters and pages channels, ordered by ID.
type ChannelListParams struct {
	Source string
	State  ChannelState // 0 for any
	// Now, when set, makes State the state a reader is shown: a channel not disabled whose expiry is
	// not after Now is expired, whatever state is stored (the renewer may not have recorded it yet).
	Now     time.Time
	AfterID string // the last channel of the previous page; "" for the first page
	Limit   int
}

// DueCursor is a place in ChannelsDue's order: the last channel of the previous page.
type DueCursor struct {
	ExpireTime time.Time
	ID         string
}

// Due is c's place in ChannelsDue's order.
func (c *Channel) Due() DueCursor { return DueCursor{ExpireTime: c.ExpireTime, ID: c.ID} }

// ChannelStore persists notification channels. Both backends return the same errors: errs.KindNotFound
// for an unknown id, errs.KindAlreadyExists for a taken one, errs.KindConflict for a stale Version.
type ChannelStore interface {
	// ChannelCreate stores c (Version 1) or fails with KindAlreadyExists when the id is taken.
	ChannelCreate(ctx context.Context, c *Channel) error
	// ChannelGet returns the channel with that id.
	ChannelGet(ctx context.Context, id string) (*Channel, error)
	// ChannelList returns at most p.Limit channels after p.AfterID in id order.
	ChannelList(ctx context.Context, p ChannelListParams) ([]*Channel, error)
	// ChannelUpdate writes c's State, ExpireTime, UpdateTime, RenewTime, FailedRenewals and LastError
	// when the stored Version is still c.Version, and sets c.Version to the new one; KindConflict when
	// another change came first, KindNotFound when the channel is gone.
	ChannelUpdate(ctx context.Context, c *Channel) error
	// ChannelDelete removes the channel (a creation that Zoho refused); KindNotFound when it is gone.
	ChannelDelete(ctx context.Context, id string) error
	// ChannelsDue returns at most limit channels that are not disabled and expire before t, soonest first
	// (ties by id), after the channel that after names (the zero DueCursor for the first page).
	ChannelsDue(ctx context.Context, t time.Time, after DueCursor, limit int) ([]*Channel, error)
	// ChannelCounts counts channels by state (states without channels are absent).
	ChannelCounts(ctx context.Context) (map[ChannelState]int, error)
}
