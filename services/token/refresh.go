package token

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/services/token/provider"
	"github.com/sergas/core/services/token/store"
)

// forceRefresh as dueWithin refreshes whatever the expiry.
const forceRefresh = time.Duration(-1)

// validToken returns the connection when its access token is good for longer than margin.
func (s *Server) validToken(c *store.Connection, now time.Time, margin time.Duration) bool {
	return c.ExpireTime.Sub(now) > margin
}

// refreshShared refreshes k at most once at a time per process: concurrent callers share the result of
// one refresh (singleflight), and across replicas the database lease makes one replica call the provider
// while the others wait for its result. The refresh runs on its own context, so a caller that gives up
// does not abort a refresh that others are waiting for.
func (s *Server) refreshShared(ctx context.Context, k store.Key, dueWithin time.Duration) (*store.Connection, error) {
	flight := fmt.Sprintf("%s\x00%s\x00%d", k.Provider, k.ConnectionID, dueWithin)
	ch := s.flights.DoChan(flight, func() (any, error) {
		// Close waits for this, so that a refresh in progress is stored before the database closes.
		s.inflight.Add(1)
		defer s.inflight.Done()
		// No deadline here: waiting for another replica's lease is bounded in refresh, the provider call
		// by the lease, and storing a result must not be cut short by a caller's deadline.
		return s.refresh(context.WithoutCancel(ctx), k, dueWithin)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*store.Connection), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refresh takes the lease and refreshes, or waits for the replica that holds it. dueWithin: refresh
// only a token expiring within it (forceRefresh: always).
func (s *Server) refresh(ctx context.Context, k store.Key, dueWithin time.Duration) (*store.Connection, error) {
	start := s.now()
	deadline := start.Add(s.cfg.LeaseTTL + time.Second)
	var startVersion int64 = -1
	// Each lease gets its own owner name, so that finishing a refresh can only release the lease that
	// refresh took, never a newer one (of this replica or another) after a takeover.
	owner := s.replica + "." + uuid.NewString()[:8]
	for {
		now := s.now()
		p := store.LeaseParams{Key: k, Owner: owner, Now: now, Until: now.Add(s.cfg.LeaseTTL)}
		if dueWithin != forceRefresh {
			p.DueBefore = now.Add(dueWithin)
		}
		c, held, err := s.store.LeaseAcquire(ctx, p)
		if err != nil {
			return nil, err
		}
		if held {
			return s.refreshHeld(ctx, c, lease{owner: owner, until: p.Until}, dueWithin == forceRefresh)
		}
		if startVersion < 0 {
			startVersion = c.Version
		}
		leased := c.LeaseOwner != "" && c.LeaseExpireTime.After(now)
		switch {
		case c.Status != store.StatusActive:
			return nil, needsReauthorization(c)
		case c.RefreshToken == nil:
			if c.ExpireTime.After(now) {
				return c, nil
			}
			return nil, errs.New(errs.KindFailedPrecondition, "access token of %s/%s expired and no refresh token is stored", k.Provider, k.ConnectionID)
		case dueWithin != forceRefresh && s.validToken(c, now, dueWithin):
			return c, nil // refreshed meanwhile, here or on another replica
		case dueWithin == forceRefresh && !leased && c.Version > startVersion:
			return c, nil // another replica refreshed while we waited: that refresh is ours too
		case !leased && c.NextRefreshTime.After(now):
			// Backing off after a failure or a provider rate limit.
			if dueWithin != forceRefresh && c.ExpireTime.After(now) {
				return c, nil // still valid: better a token that expires soon than none
			}
			return nil, retryLater(c.LastRefreshError, c.NextRefreshTime.Sub(now))
		case now.After(deadline):
			return nil, retryError(codes.Unavailable, "a refresh of this connection is in progress on another replica", time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lease is a held refresh lease.
type lease struct {
	owner string
	until time.Time
}

// finish stores a refresh outcome, retrying a few times: a successful result may carry a rotated refresh
// token that exists nowhere else.
func (s *Server) finish(ctx context.Context, r store.RefreshResult) (*store.Connection, error) {
	var err error
	for attempt := range 4 {
		var out *store.Connection
		if out, err = s.store.RefreshFinish(ctx, r); err == nil || errs.KindOf(err) == errs.KindConflict {
			return out, err
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return nil, err
}

// refreshHeld calls the provider while holding the lease, and stores the outcome (releasing the lease)
// in one transaction. A failure never touches the stored tokens.
func (s *Server) refreshHeld(ctx context.Context, c *store.Connection, l lease, forced bool) (*store.Connection, error) {
	k := store.Key{Provider: c.Provider, ConnectionID: c.ConnectionID}
	now := s.now()
	release := func(next time.Time, class string) {
		if _, err := s.finish(ctx, store.RefreshResult{Key: k, Owner: l.owner, Now: now, Status: c.Status,
			NextRefreshTime: next, ErrorClass: class}); err != nil {
			s.log.WarnContext(ctx, "releasing a refresh lease failed; it expires on its own", "provider", k.Provider, "connection", k.ConnectionID, "error", err.Error())
		}
	}
	prov := s.providers[c.Provider]
	var problem error
	switch {
	case prov == nil:
		problem = errs.New(errs.KindFailedPrecondition, "provider %q is not configured (TOKEN_PROVIDERS)", c.Provider)
	case c.RefreshToken == nil:
		problem = errs.New(errs.KindFailedPrecondition, "connection %s/%s has no refresh token; store new tokens", k.Provider, k.ConnectionID)
	case c.ClientID == "" && prov.ClientID == "":
		// Asking the provider without a client would only earn an invalid_client and a needless
		// re-authorisation: this is a configuration problem.
		problem = errs.New(errs.KindFailedPrecondition, "provider %q has no client credentials: set TOKEN_PROVIDER_%s_CLIENT_ID and _CLIENT_SECRET, or store them with the connection",
			c.Provider, envName(c.Provider))
	}
	if problem != nil {
		s.observeRefresh(c.Provider, refreshNotConfigured)
		release(time.Time{}, "")
		if !forced && c.ExpireTime.After(now) {
			return c, nil
		}
		return nil, problem
	}
	if prov.RefreshLimit > 0 {
		n, oldest, err := s.store.RefreshEventCount(ctx, k, now.Add(-prov.RefreshWindow))
		if err != nil {
			release(time.Time{}, "")
			return nil, err
		}
		if n >= prov.RefreshLimit {
			// Never burn the provider's budget: wait until the oldest refresh leaves the window.
			next := oldest.Add(prov.RefreshWindow)
			s.observeRefresh(c.Provider, refreshBudgetSpent)
			release(next, string(provider.ClassRateLimited))
			if !forced && c.ExpireTime.After(now) {
				return c, nil
			}
			return nil, retryLater(string(provider.ClassRateLimited), next.Sub(now))
		}
	}
	refreshToken, err := s.seal.open(k, "refresh_token", c.RefreshToken)
	if err == nil {
		var secret string
		if secret, err = s.seal.open(k, "client_secret", c.ClientSecret); err == nil {
			// The provider call ends a second before the lease does, so that its outcome is stored
			// while the lease is still ours (the HTTP client's TOKEN_PROVIDER_TIMEOUT applies too).
			pctx, cancel := context.WithDeadline(ctx, l.until.Add(-time.Second))
			var tokens *provider.Tokens
			tokens, err = prov.Refresh(pctx, refreshToken, c.ClientID, secret)
			cancel()
			if err == nil {
				out, serr := s.refreshSucceeded(ctx, c, l, tokens, refreshToken, secret, now)
				s.observeRefresh(c.Provider, storedResult(serr))
				return out, serr
			}
			s.observeRefresh(c.Provider, refreshFailureResult(err))
			return s.refreshFailed(ctx, c, l, err, now, forced)
		}
	}
	s.observeRefresh(c.Provider, refreshUnsealFailed)
	release(time.Time{}, "")
	return nil, err
}

func (s *Server) refreshSucceeded(ctx context.Context, c *store.Connection, l lease, t *provider.Tokens, oldRefresh, secret string, now time.Time) (*store.Connection, error) {
	k := store.Key{Provider: c.Provider, ConnectionID: c.ConnectionID}
	access, err := s.seal.seal(k, "access_token", t.AccessToken)
	if err != nil {
		return nil, err
	}
	// Every sealed column is written again under the primary key, so that key_id stays true for the
	// whole row (re-sealing and the start-up key check rely on it).
	newRefresh := oldRefresh
	if t.RefreshToken != "" {
		newRefresh = t.RefreshToken
	}
	sealedRefresh, err := s.seal.seal(k, "refresh_token", newRefresh)
	if err != nil {
		return nil, err
	}
	sealedSecret, err := s.seal.seal(k, "client_secret", secret)
	if err != nil {
		return nil, err
	}
	rotated := t.RefreshToken != "" && t.RefreshToken != oldRefresh
	expire := now.Add(t.ExpiresIn).UTC().Truncate(time.Microsecond)
	ev := &store.RefreshEvent{Time: now, Outcome: store.OutcomeSuccess, PreviousExpireTime: c.ExpireTime, NewExpireTime: expire,
		Rotated: rotated, Replica: s.replica}
	out, err := s.finish(ctx, store.RefreshResult{Key: k, Owner: l.owner, Now: now, Success: true,
		KeyID: s.seal.ring.Primary, AccessToken: access, RefreshToken: sealedRefresh, ClientSecret: sealedSecret, TokenType: t.TokenType, ExpireTime: expire,
		APIDomain: t.APIDomain, Scopes: nilIfEmpty(t.Scopes), Event: ev,
		Outbox: s.outbox(ctx, "token.refresh", k, auditv1.Outcome_OUTCOME_SUCCESS, map[string]any{
			"previous_expire_time": c.ExpireTime.Format(time.RFC3339), "new_expire_time": expire.Format(time.RFC3339),
			"refresh_token_rotated": rotated, "replica": s.replica})})
	if err != nil {
		s.log.ErrorContext(ctx, "a refreshed token could not be stored; the previous one stays", "provider", k.Provider, "connection", k.ConnectionID, "error", err.Error())
		return nil, err
	}
	return out, nil
}

func (s *Server) refreshFailed(ctx context.Context, c *store.Connection, l lease, perr error, now time.Time, forced bool) (*store.Connection, error) {
	k := store.Key{Provider: c.Provider, ConnectionID: c.ConnectionID}
	class, retryAfter := provider.ClassOf(perr)
	st, next := store.StatusActive, now
	switch {
	case class.Permanent():
		st = store.StatusNeedsReauthorization
	case class == provider.ClassRateLimited:
		next = now.Add(max(retryAfter, time.Minute))
	default:
		next = now.Add(max(retryAfter, backoff(c.RefreshFailures+1)))
	}
	ev := &store.RefreshEvent{Time: now, Outcome: store.OutcomeFailure, PreviousExpireTime: c.ExpireTime, ErrorClass: string(class), Replica: s.replica}
	meta := map[string]any{"error_class": string(class), "replica": s.replica}
	if st == store.StatusNeedsReauthorization {
		meta["needs_reauthorization"] = true
	}
	after, err := s.finish(ctx, store.RefreshResult{Key: k, Owner: l.owner, Now: now, Status: st,
		NextRefreshTime: next, ErrorClass: string(class), Event: ev,
		Outbox: s.outbox(ctx, "token.refresh", k, auditv1.Outcome_OUTCOME_FAILURE, meta)})
	if err != nil {
		s.log.ErrorContext(ctx, "recording a failed refresh failed", "provider", k.Provider, "connection", k.ConnectionID, "error", err.Error())
	}
	s.log.WarnContext(ctx, "refresh failed", "provider", k.Provider, "connection", k.ConnectionID, "class", string(class), "next_attempt", next)
	if st == store.StatusNeedsReauthorization {
		if after == nil {
			after = c
		}
		after.Status, after.LastRefreshError = st, string(class)
		return nil, needsReauthorization(after)
	}
	if !forced && c.ExpireTime.After(now) {
		return c, nil // the stored token still works; the next call or the background refresher retries
	}
	return nil, retryLater(string(class), next.Sub(now))
}

// backoff grows exponentially from 1 s to 5 min, with ±20% jitter so that replicas spread out.
func backoff(failures int) time.Duration {
	d := time.Second << min(failures-1, 9)
	d = min(d, 5*time.Minute)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func needsReauthorization(c *store.Connection) error {
	if c.LastRefreshError == string(provider.ClassInvalidClient) {
		return errs.New(errs.KindFailedPrecondition, "connection %s/%s needs re-authorisation: the provider rejected the client credentials while refreshing (%s); fix TOKEN_PROVIDER_%s_CLIENT_ID and _CLIENT_SECRET (or the connection's client), then exchange a new code or create it again",
			c.Provider, c.ConnectionID, c.LastRefreshError, envName(c.Provider))
	}
	return errs.New(errs.KindFailedPrecondition, "connection %s/%s needs re-authorisation: the provider rejected its refresh token (%s); exchange a new code or create it again",
		c.Provider, c.ConnectionID, c.LastRefreshError)
}

// retryLater answers a refresh that failed or is backing off: RESOURCE_EXHAUSTED for a provider rate
// limit and UNAVAILABLE otherwise, with a RetryInfo.
func retryLater(class string, wait time.Duration) error {
	if class == string(provider.ClassRateLimited) {
		return retryError(codes.ResourceExhausted, "refreshing the token: the provider's token budget is spent", wait)
	}
	return retryError(codes.Unavailable, fmt.Sprintf("refreshing the token failed (%s)", class), wait)
}

// providerUnavailable answers a provider call other than a refresh (what names it, such as "revoking the
// token") that failed for a reason retrying may cure; the message names the call and the provider's
// safe error code, never a token.
func providerUnavailable(what, prov string, err error, wait time.Duration) error {
	class, _ := provider.ClassOf(err)
	detail := string(class)
	var pe *provider.Error
	if errors.As(err, &pe) && pe.Code != "" && pe.Code != detail {
		detail += ": " + pe.Code
	}
	if class == provider.ClassRateLimited {
		return retryError(codes.ResourceExhausted, fmt.Sprintf("%s at provider %q: the provider is rate limiting (%s)", what, prov, detail), max(wait, time.Second))
	}
	return retryError(codes.Unavailable, fmt.Sprintf("%s at provider %q failed (%s)", what, prov, detail), max(wait, time.Second))
}

// envName is the provider's part of its TOKEN_PROVIDER_<NAME>_* variables.
func envName(prov string) string { return strings.ToUpper(strings.ReplaceAll(prov, "-", "_")) }

func retryError(code codes.Code, msg string, wait time.Duration) error {
	return ratelimit.RetryError(code, msg, max(wait, 100*time.Millisecond))
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
