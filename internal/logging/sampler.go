package logging

import (
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Sampler thins out a kind of log line that a caller can trigger at will (refused calls): at most
// perSecond lines a second, with bursts of burst, and the number left out is reported with the next line
// let through, so that the log stays readable and cheap while the count is never lost. The metrics
// count every event.
type Sampler struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
}

// NewSampler returns a sampler.
func NewSampler(perSecond float64, burst int) *Sampler {
	return &Sampler{lim: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))}
}

// Allow reports whether to write this line and, when it does, how many lines were left out since the
// last one written.
func (s *Sampler) Allow(now time.Time) (ok bool, suppressed int64) {
	if !s.lim.AllowN(now, 1) {
		s.suppressed.Add(1)
		return false, 0
	}
	return true, s.suppressed.Swap(0)
}
