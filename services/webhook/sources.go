package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/textproto"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sergas/core/internal/filewatch"
	"github.com/sergas/core/internal/ratelimit"
)

// source is one configured sender of webhooks, the {source} of POST /webhooks/{source}: how its
// deliveries are verified, and its own limits.
type source struct {
	name      string
	scheme    string
	verifier  verifier
	bodyLimit int
	rate      RateConfig
	limit     *ratelimit.Keyed // one bucket, keyed by name
	// normaliser reads what a delivery is about (normalise.go).
	normaliser normaliser
}

// sourceSet is one version of the configuration: every source by name.
type sourceSet map[string]*source

// sourceDefaults are what a source that does not say otherwise gets.
type sourceDefaults struct {
	rate      RateConfig
	bodyLimit int
	// deny is WEBHOOK_HEADER_DENYLIST (canonical, sorted): an event id header's value is stored as the
	// dedupe key, so a denied header cannot be one.
	deny []string
}

// buildSources checks cfgs and builds their sources. A source whose name and rate did not change keeps
// its bucket from prev, so that a reload neither refills nor empties it. Errors name the source and the
// field, never a secret.
func buildSources(cfgs []SourceConfig, def sourceDefaults, lookup secretResolver, prev sourceSet) (sourceSet, error) {
	out := make(sourceSet, len(cfgs))
	for i, c := range cfgs {
		s, err := buildSource(c, def, lookup)
		if err != nil {
			if c.Name != "" && sourceName(c.Name) == nil {
				return nil, fmt.Errorf("source %q: %w", c.Name, err)
			}
			return nil, fmt.Errorf("source %d: %w", i+1, err)
		}
		if _, dup := out[s.name]; dup {
			return nil, fmt.Errorf("source %q appears twice", s.name)
		}
		if p, ok := prev[s.name]; ok && p.rate == s.rate {
			s.limit = p.limit
		} else {
			s.limit = ratelimit.New(float64(s.rate.PerSecond), s.rate.Burst)
		}
		out[s.name] = s
	}
	return out, nil
}

func buildSource(c SourceConfig, def sourceDefaults, lookup secretResolver) (*source, error) {
	if err := sourceName(c.Name); err != nil {
		return nil, err
	}
	s := &source{name: c.Name, scheme: c.Scheme, bodyLimit: def.bodyLimit, rate: def.rate}
	s.normaliser.zoho = c.Scheme == SchemeZohoCRM
	if c.EventTypePointer != "" {
		tokens, err := parsePointer(c.EventTypePointer)
		if err != nil {
			return nil, err
		}
		s.normaliser.eventType = tokens
	}
	if c.BodyLimit != 0 {
		if c.BodyLimit < 0 || c.BodyLimit > def.bodyLimit {
			return nil, fmt.Errorf("body_limit must be between 1 and WEBHOOK_MAX_BODY_BYTES (%d)", def.bodyLimit)
		}
		s.bodyLimit = c.BodyLimit
	}
	if c.RateLimit != nil {
		if c.RateLimit.PerSecond < 0 || c.RateLimit.Burst < 1 || c.RateLimit.PerSecond > 1_000_000 || c.RateLimit.Burst > 1_000_000 {
			return nil, errors.New("rate_limit needs per_second from 0 (unlimited) to 1000000 and burst from 1 to 1000000")
		}
		s.rate = *c.RateLimit
	}
	if len(c.Secrets) > maxSecrets {
		return nil, fmt.Errorf("at most %d secrets", maxSecrets)
	}
	var secrets [][]byte
	for _, ref := range c.Secrets {
		b, err := lookup.resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		secrets = append(secrets, b)
	}
	needSecrets := func() error {
		if len(secrets) == 0 {
			return fmt.Errorf("%s needs at least one secret", c.Scheme)
		}
		return nil
	}
	onlyOptions := func(allowed string) error {
		if (c.HMAC != nil && allowed != "hmac") || (c.StandardWebhooks != nil && allowed != "standard_webhooks") ||
			(c.ZohoCRM != nil && allowed != "zoho_crm") {
			return fmt.Errorf("options of another scheme given for scheme %s", c.Scheme)
		}
		return nil
	}
	if c.HMAC != nil && c.HMAC.EventIDHeader != "" {
		if _, denied := slices.BinarySearch(def.deny, textproto.CanonicalMIMEHeaderKey(c.HMAC.EventIDHeader)); denied {
			return nil, errors.New("hmac.event_id_header must not name a header on WEBHOOK_HEADER_DENYLIST: its value would be stored as the dedupe key")
		}
	}
	var err error
	switch c.Scheme {
	case SchemeHMAC:
		if err = errors.Join(needSecrets(), onlyOptions("hmac")); err == nil {
			s.verifier, err = newHMACVerifier(c.HMAC, secrets)
		}
	case SchemeStandardWebhooks:
		if err = errors.Join(needSecrets(), onlyOptions("standard_webhooks")); err == nil {
			s.verifier, err = newStandardVerifier(c.StandardWebhooks, secrets)
		}
	case SchemeZohoCRM:
		if len(secrets) > 0 {
			return nil, errors.New("zoho-crm takes channel tokens (zoho_crm.channels), not secrets")
		}
		if err = onlyOptions("zoho_crm"); err == nil {
			s.verifier, _, err = newZohoVerifier(c.ZohoCRM, lookup.resolve)
		}
	case SchemeNone:
		if len(secrets) > 0 || onlyOptions("") != nil {
			return nil, errors.New("scheme none takes no secrets or options")
		}
		s.verifier = noneVerifier{}
	case "":
		return nil, errors.New("scheme is missing (zoho-crm, hmac, standard-webhooks, or none to accept unverified deliveries)")
	default:
		return nil, errors.New("scheme must be zoho-crm, hmac, standard-webhooks or none")
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

var (
	reloadErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "webhook_sources_reload_errors_total",
		Help: "Re-reads of WEBHOOK_SOURCES_FILE that failed; the previous sources stay in force.",
	})
	reloads = promauto.NewCounter(prometheus.CounterOpts{
		Name: "webhook_sources_reloads_total",
		Help: "Re-reads of WEBHOOK_SOURCES_FILE that took effect.",
	})
)

// sourcesFileInterval is how often WEBHOOK_SOURCES_FILE is checked for changes (at most, on use), as
// AUTH_API_KEYS_FILE is. Tests set it to zero.
var sourcesFileInterval = time.Second

// sourceProvider hands out the sources in force: fixed ones from the environment, or the file's, which
// are re-read when it changes (filewatch, the mechanism that re-reads AUTH_API_KEYS_FILE).
type sourceProvider struct {
	static sourceSet
	file   *filewatch.Cached[sourceSet]
	log    atomic.Pointer[slog.Logger] // set by the server; reload errors before that are only counted
}

func (p *sourceProvider) get() sourceSet {
	if p.file != nil {
		return p.file.Get()
	}
	return p.static
}

// watchSourcesFile loads path and keeps re-reading it. The first load's error is returned (the service
// refuses to start); later ones keep the previous sources, and are logged and counted.
func watchSourcesFile(path string, def sourceDefaults, lookup secretResolver) (*sourceProvider, error) {
	p := &sourceProvider{}
	var prev sourceSet // read and written only inside load, which filewatch serialises
	load := func() (sourceSet, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read the sources file (%s)", describeFileError(err))
		}
		cfgs, err := parseSourcesFile(raw)
		if err != nil {
			return nil, err
		}
		set, err := buildSources(cfgs, def, lookup, prev)
		if err != nil {
			return nil, err
		}
		if prev != nil {
			reloads.Inc()
			if log := p.log.Load(); log != nil {
				log.Info("webhook sources reloaded", "service", "webhook", "sources", len(set))
				warnUnverified(log, set)
			}
		}
		prev = set
		return set, nil
	}
	c, err := filewatch.New([]string{path}, sourcesFileInterval, load, func(err error) {
		reloadErrors.Inc()
		if log := p.log.Load(); log != nil {
			log.Error("webhook sources file not reloaded; keeping the previous sources", "service", "webhook", "error", err.Error())
		}
	})
	if err != nil {
		return nil, err
	}
	p.file = c
	return p, nil
}

// warnUnverified logs, at start and on each reload, every source that accepts unverified deliveries.
func warnUnverified(log *slog.Logger, set sourceSet) {
	for _, s := range set {
		if s.scheme == SchemeNone {
			log.Warn("webhook source accepts unverified deliveries (scheme none): anyone who can reach the gateway can store events as this source",
				"service", "webhook", "source", s.name)
		}
	}
}
