package token

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sergas/core/internal/tracing"
	"github.com/sergas/core/services/token/store"
)

// refreshAhead refreshes connections before they expire, without being asked: every interval it looks
// for tokens expiring within the margin plus one interval, and refreshes them with jitter and at most
// RefresherConcurrency at a time. The lease makes each refresh happen on one replica only. A round ends
// when its refreshes have (each is bounded by the lease), so rounds never pile up behind a slow provider.
// It runs as the token.refresher worker (Service.Background).
func (s *Server) refreshAhead(ctx context.Context) {
	if s.cfg.RefresherInterval <= 0 {
		return
	}
	sem := make(chan struct{}, s.cfg.RefresherConcurrency)
	for {
		jitter := time.Duration(rand.Float64() * float64(s.cfg.RefresherInterval) / 5)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.RefresherInterval - jitter):
		}
		now := s.now()
		lookahead := s.cfg.RefreshMargin + s.cfg.RefresherInterval
		keys, err := s.store.ConnectionsDue(ctx, now.Add(lookahead), now, 100)
		if err != nil {
			s.log.Warn("background refresher could not list due connections", "error", err.Error())
			continue
		}
		s.refreshRound(ctx, keys, sem, lookahead)
		s.refresherRounds.Add(1)
	}
}

// refreshRound refreshes keys, at most cap(sem) at a time, and returns when all have finished.
func (s *Server) refreshRound(ctx context.Context, keys []store.Key, sem chan struct{}, lookahead time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, k := range keys {
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, span := tracing.StartJob(ctx, "token background refresh")
			defer span.End()
			// Spread replicas and connections over part of the interval.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(rand.Float64() * float64(s.cfg.RefresherInterval) / 4)):
			}
			if _, err := s.refreshShared(ctx, k, lookahead); err != nil {
				s.log.Debug("background refresh did not complete", "provider", k.Provider, "connection", k.ConnectionID, "error", err.Error())
			}
			s.wakeOutbox()
		}()
	}
}
