package webhook

import (
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/internal/validate"
)

// source is one configured sender of webhooks, the {source} of POST /webhooks/{source}, with the budget
// its stored deliveries share. Whatever else a source needs (its verification scheme and secrets, its own
// limits) belongs here, so that Ingest asks its source rather than the global configuration.
type source struct {
	name  string
	limit *ratelimit.Keyed // one bucket, keyed by name
}

func newSource(name string, perSecond, burst int) *source {
	return &source{name: name, limit: ratelimit.New(float64(perSecond), burst)}
}

// spend takes one delivery from the source's budget. It is called only for a delivery about to be
// stored, so that deliveries refused for any other reason (a flooding address, a malformed or, once
// sources are verified, forged request) never use up the budget of the source's real deliveries.
func (s *source) spend(now time.Time) error {
	if ok, wait := s.limit.Allow(s.name, now); !ok {
		return ratelimit.Exceeded("source", wait)
	}
	return nil
}

// sources are the configured sources by name.
type sources map[string]*source

func newSources(cfg Config) sources {
	out := make(sources, len(cfg.Sources))
	for _, n := range cfg.Sources {
		out[n] = newSource(n, cfg.RatePerSecond, cfg.RateBurst)
	}
	return out
}

// get returns the source named name, or InvalidArgument / NotFound.
func (ss sources) get(name string) (*source, error) {
	if err := validate.Name("source", name); err != nil {
		return nil, err
	}
	s, ok := ss[name]
	if !ok {
		return nil, errs.NotFound("webhook source %q is not configured", name)
	}
	return s, nil
}
