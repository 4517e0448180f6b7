package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/zohocrm"
)

// zohoProvider is the token-service provider whose connections manage channels.
const zohoProvider = "zoho"

// accessTokens is the token service, as the channel manager uses it (tokenclient.Client).
type accessTokens interface {
	AccessToken(ctx context.Context, provider, connectionID string) (*tokenv1.GetAccessTokenResponse, error)
}

// channels manages Zoho CRM notification channels: it enables them at Zoho, keeps their tokens sealed,
// renews them before they expire and answers the zoho-crm verifier's token lookups.
type channels struct {
	store  store.ChannelStore
	ring   *keyring.Keyring // nil: WEBHOOK_ENCRYPTION_KEYS is not set, channels cannot be created
	tokens accessTokens     // nil: no credential for the token service
	zoho   *zohocrm.Client
	cfg    ChannelConfig
	log    *slog.Logger
	now    func() time.Time
}

func newChannels(st store.ChannelStore, ring *keyring.Keyring, tokens accessTokens, cfg ChannelConfig, log *slog.Logger, now func() time.Time) *channels {
	return &channels{store: st, ring: ring, tokens: tokens, cfg: cfg, log: log, now: now,
		zoho: &zohocrm.Client{HTTP: &http.Client{Timeout: cfg.Timeout}}}
}

// tokenAAD binds a sealed channel token to its channel, so that a sealed value copied to another row
// does not open.
func tokenAAD(id string) []byte { return []byte("zoho-channel\x00" + id + "\x00token") }

// channelToken implements channelTokens for the zoho-crm verifier: the token of a channel of source
// that is not disabled.
func (m *channels) channelToken(ctx context.Context, source, id string) ([]byte, bool, error) {
	c, err := m.store.ChannelGet(ctx, id)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if c.Source != source || c.State == store.ChannelDisabled {
		return nil, false, nil
	}
	tok, err := m.openToken(c)
	if err != nil {
		return nil, false, err
	}
	return tok, true, nil
}

func (m *channels) openToken(c *store.Channel) ([]byte, error) {
	if m.ring == nil {
		return nil, errs.New(errs.KindFailedPrecondition, "channel tokens cannot be opened: WEBHOOK_ENCRYPTION_KEYS is not set")
	}
	tok, err := m.ring.Open(c.SealedToken, tokenAAD(c.ID))
	if err != nil {
		return nil, errs.Wrap(errs.KindFailedPrecondition, err, fmt.Sprintf("the token of channel %s cannot be opened: %v; check WEBHOOK_ENCRYPTION_KEYS", c.ID, err))
	}
	return tok, nil
}

// ready says why channels cannot be managed, nil when they can.
func (m *channels) ready() error {
	switch {
	case m.ring == nil:
		return errs.New(errs.KindFailedPrecondition, "Zoho channels need WEBHOOK_ENCRYPTION_KEYS, which seals their tokens")
	case m.tokens == nil:
		return errs.New(errs.KindFailedPrecondition, "Zoho channels need a credential for the token service: set TOKEN_CLIENT_API_KEY (a key with token:read)")
	}
	return nil
}

// auth asks the token service for the connection's access token.
func (m *channels) auth(ctx context.Context, connectionID string) (zohocrm.Auth, error) {
	resp, err := m.tokens.AccessToken(ctx, zohoProvider, connectionID)
	if err != nil {
		return zohocrm.Auth{}, tokenError(connectionID, err)
	}
	return zohocrm.Auth{APIDomain: resp.GetApiDomain(), AccessToken: resp.GetAccessToken(), TokenType: resp.GetTokenType()}, nil
}

// tokenError turns the token service's refusal into one of ours that names the connection, never a
// token.
func tokenError(connectionID string, err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound:
		return errs.New(errs.KindFailedPrecondition, "token service has no zoho connection %q", connectionID)
	case codes.FailedPrecondition:
		return errs.New(errs.KindFailedPrecondition, "zoho connection %q cannot give an access token: %s", connectionID, st.Message())
	case codes.Unauthenticated, codes.PermissionDenied:
		return errs.New(errs.KindFailedPrecondition, "the token service refused the webhook service's credential (TOKEN_CLIENT_API_KEY needs token:read)")
	default:
		return errs.Wrap(errs.KindUnavailable, err, "token service unavailable")
	}
}

// zohoError turns Zoho's refusal into one of ours: a temporary one (rate limit, outage, network) is
// Unavailable, anything else FailedPrecondition with Zoho's code and message (never a token).
func zohoError(what string, err error) error {
	var api *zohocrm.APIError
	if errors.As(err, &api) {
		kind := errs.KindFailedPrecondition
		if api.Temporary() {
			kind = errs.KindUnavailable
		}
		return errs.Wrap(kind, err, fmt.Sprintf("Zoho refused to %s the channel: %s", what, api.Error()))
	}
	if errors.Is(err, zohocrm.ErrChannelNotFound) {
		return errs.Wrap(errs.KindFailedPrecondition, err, "Zoho does not know the channel")
	}
	if errs.KindOf(err) == errs.KindInvalid {
		// Refused before sending (the client's checks of what we would send): retrying cannot help.
		return errs.Wrap(errs.KindFailedPrecondition, err, fmt.Sprintf("cannot %s the channel at Zoho: %s", what, errs.Message(err)))
	}
	return errs.Wrap(errs.KindUnavailable, err, "cannot reach Zoho to "+what+" the channel")
}

// newChannelID picks an 18-digit channel id.
func newChannelID() (string, error) {
	lo := big.NewInt(100_000_000_000_000_000)
	n, err := rand.Int(rand.Reader, big.NewInt(900_000_000_000_000_000))
	if err != nil {
		return "", err
	}
	return n.Add(n, lo).String(), nil
}

// newChannelToken makes a token Zoho echoes back: 32 random bytes, 43 characters (Zoho allows 50).
func newChannelToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// watch is c as Zoho's Notification API takes it, with its opened token and a new expiry.
func (m *channels) watch(c *store.Channel, expiry time.Time) (zohocrm.Watch, error) {
	tok, err := m.openToken(c)
	if err != nil {
		return zohocrm.Watch{}, err
	}
	return zohocrm.Watch{ChannelID: c.ID, Events: c.Events, Expiry: expiry, Token: string(tok), NotifyURL: c.NotifyURL,
		ReturnAffectedFieldValues: c.ReturnAffectedFieldValues}, nil
}

// create stores c with a new sealed token and enables it at Zoho. The row is stored first, so that a
// notification Zoho sends as soon as the channel is enabled is already accepted; a channel Zoho refuses
// is deleted again. Should the process die between the two, the renewer enables the stored channel a
// few minutes later, when its provisional expiry brings it due (a renewal re-enables a channel Zoho
// does not know).
func (m *channels) create(ctx context.Context, c *store.Channel) (*store.Channel, error) {
	if err := m.ready(); err != nil {
		return nil, err
	}
	a, err := m.auth(ctx, c.ConnectionID)
	if err != nil {
		return nil, err
	}
	tok, err := newChannelToken()
	if err != nil {
		return nil, err
	}
	if c.SealedToken, err = m.ring.Seal([]byte(tok), tokenAAD(c.ID)); err != nil {
		return nil, err
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	// Until Zoho confirms an expiry the row carries a provisional one that brings it due for renewal
	// a short while after Zoho's answer was due: should the process die before that answer, the renewer
	// enables the channel within minutes instead of TTL-RenewBefore later.
	c.State, c.CreateTime, c.UpdateTime = store.ChannelActive, now, now
	c.ExpireTime = now.Add(min(m.cfg.TTL, m.cfg.RenewBefore+2*m.cfg.Timeout+time.Minute))
	if err := m.store.ChannelCreate(ctx, c); err != nil {
		return nil, err
	}
	w, err := m.watch(c, now.Add(m.cfg.TTL))
	if err == nil {
		var expiry time.Time
		if expiry, err = m.zoho.Enable(ctx, a, w); err == nil {
			c.ExpireTime, c.RenewTime = believedExpiry(expiry, w.Expiry), now
			if err = m.store.ChannelUpdate(ctx, c); err != nil {
				if errs.KindOf(err) == errs.KindConflict {
					// Disabled meanwhile (its Zoho call came before ours): disable it at Zoho again.
					m.afterConflict(ctx, c.ID)
				}
				return nil, err
			}
			return c, nil
		}
		err = zohoError("enable", err)
	}
	// Zoho did not take it: forget it, with a context of its own so that a caller who went away does
	// not leave a channel behind.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Timeout+5*time.Second)
	defer cancel()
	if errs.KindOf(err) == errs.KindUnavailable {
		// No answer (or a temporary one): Zoho may have enabled it all the same, and would post, until
		// its expiry, notifications we refuse. Disable it there too, as far as Zoho can be reached.
		if derr := m.zoho.Disable(dctx, a, c.ID); derr != nil && !errors.Is(derr, zohocrm.ErrChannelNotFound) {
			m.log.WarnContext(ctx, "cannot disable at Zoho a channel whose enabling failed; should Zoho have it, it lapses at its expiry",
				"service", "webhook", "channel_id", c.ID)
		}
	}
	if derr := m.store.ChannelDelete(dctx, c.ID); derr != nil && errs.KindOf(derr) != errs.KindNotFound {
		m.log.ErrorContext(ctx, "cannot delete a channel Zoho refused; the renewer retries enabling it", "service", "webhook", "channel_id", c.ID, "error", derr.Error())
	}
	return nil, err
}

// renew extends c's expiry at Zoho (enabling it again when Zoho no longer knows it) and stores the
// outcome: a failure is recorded on the channel (failing, or expired once its expiry has passed) and
// returned.
func (m *channels) renew(ctx context.Context, c *store.Channel) (*store.Channel, error) {
	now := m.now().UTC().Truncate(time.Microsecond)
	expiry, err := m.extend(ctx, c, now.Add(m.cfg.TTL))
	next := *c
	next.UpdateTime = now
	if err == nil {
		next.State, next.ExpireTime, next.RenewTime, next.FailedRenewals, next.LastError = store.ChannelActive, expiry.UTC().Truncate(time.Microsecond), now, 0, ""
		if asked := now.Add(m.cfg.TTL); expiry.Before(asked.Add(-time.Minute)) {
			m.log.WarnContext(ctx, "zoho confirmed a shorter channel expiry than asked (beyond its maximum it sets one hour); check WEBHOOK_ZOHO_CHANNEL_TTL",
				"service", "webhook", "channel_id", c.ID, "expire_time", expiry, "asked", asked)
		}
	} else {
		next.State, next.FailedRenewals, next.LastError = store.ChannelFailing, c.FailedRenewals+1, renewalError(err)
		if !next.ExpireTime.After(now) {
			next.State = store.ChannelExpired
		}
	}
	// Counted before its outcome is stored: Zoho was asked, whether or not the store takes the answer.
	renewalsTotal.WithLabelValues(renewalResult(err)).Inc()
	if uerr := m.store.ChannelUpdate(ctx, &next); uerr != nil {
		if errs.KindOf(uerr) == errs.KindConflict {
			m.afterConflict(ctx, c.ID)
		}
		return nil, uerr
	}
	if err != nil {
		m.log.WarnContext(ctx, "zoho channel renewal failed", "service", "webhook", "channel_id", c.ID, "state", channelStateName(next.State),
			"failed_renewals", next.FailedRenewals, "expire_time", next.ExpireTime, "error", next.LastError)
		return &next, err
	}
	return &next, nil
}

// extend asks Zoho for a new expiry, enabling the channel again when Zoho no longer has it (expired at
// Zoho, or never enabled because the process died during create).
func (m *channels) extend(ctx context.Context, c *store.Channel, expiry time.Time) (time.Time, error) {
	// A renewal that cannot start is a failed one: recorded, so that the channel shows as failing.
	if err := m.ready(); err != nil {
		return time.Time{}, err
	}
	a, err := m.auth(ctx, c.ConnectionID)
	if err != nil {
		return time.Time{}, err
	}
	w, err := m.watch(c, expiry)
	if err != nil {
		return time.Time{}, err
	}
	got, err := m.zoho.Update(ctx, a, w)
	if errors.Is(err, zohocrm.ErrChannelNotFound) {
		got, err = m.zoho.Enable(ctx, a, w)
	}
	if err != nil {
		return time.Time{}, zohoError("renew", err)
	}
	return believedExpiry(got, expiry), nil
}

// believedExpiry is the expiry Zoho confirmed, but never later than the one asked: Zoho only ever
// shortens it, so a later one is a misreading, and renewing by it would let the channel lapse first.
func believedExpiry(confirmed, asked time.Time) time.Time {
	if confirmed.After(asked) {
		confirmed = asked
	}
	return confirmed.UTC().Truncate(time.Microsecond)
}

// afterConflict runs when a renewal's outcome could not be stored because the channel changed meanwhile:
// if it was disabled, the renewal may have enabled it at Zoho again, so it is disabled there once more.
func (m *channels) afterConflict(ctx context.Context, id string) {
	// Its own context: a caller who went away must not leave the channel enabled at Zoho.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*m.cfg.Timeout)
	defer cancel()
	c, err := m.store.ChannelGet(ctx, id)
	if err != nil || c.State != store.ChannelDisabled {
		return
	}
	if a, err := m.auth(ctx, c.ConnectionID); err == nil {
		if err := m.zoho.Disable(ctx, a, id); err != nil && !errors.Is(err, zohocrm.ErrChannelNotFound) {
			m.log.WarnContext(ctx, "cannot disable at Zoho a channel renewed while it was being disabled; it lapses at its expiry", "service", "webhook", "channel_id", id)
		}
	}
}

// disable marks c disabled first (its notifications are refused from then on and it is never renewed),
// then disables it at Zoho. A channel Zoho no longer knows is disabled all the same; any other failure
// at Zoho is returned after the channel is disabled here, and the channel lapses at Zoho at its expiry
// unless the caller disables it again.
func (m *channels) disable(ctx context.Context, c *store.Channel) (*store.Channel, error) {
	next := *c
	// Already disabled here: only Zoho is asked again (an earlier disable may not have reached it).
	if c.State != store.ChannelDisabled {
		next.State, next.UpdateTime = store.ChannelDisabled, m.now().UTC().Truncate(time.Microsecond)
		if err := m.store.ChannelUpdate(ctx, &next); err != nil {
			return nil, err
		}
	}
	if err := m.ready(); err != nil {
		return &next, err
	}
	a, err := m.auth(ctx, c.ConnectionID)
	if err != nil {
		return &next, err
	}
	if err := m.zoho.Disable(ctx, a, c.ID); err != nil && !errors.Is(err, zohocrm.ErrChannelNotFound) {
		return &next, zohoError("disable", err)
	}
	return &next, nil
}

// renewalError is what a channel records of a failed renewal: the caller-safe message of our error, at
// most 500 bytes of valid UTF-8 without NUL (text both databases store).
func renewalError(err error) string {
	msg := strings.ToValidUTF8(strings.ReplaceAll(errs.Message(err), "\x00", ""), "")
	for len(msg) > 500 {
		_, size := utf8.DecodeLastRuneInString(msg)
		msg = msg[:len(msg)-size]
	}
	return msg
}
