package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/filewatch"
	"github.com/sergas/core/internal/keyfile"
)

// Config says how callers authenticate and how fast each may call.
type Config struct {
	Disabled      bool
	APIKeys       string // inline JSON {"keys":[…]} (hashes only)
	APIKeysFile   string // same format, reloaded when it changes
	JWTKeysFile   string // JWKS, reloaded when it changes
	JWTIssuer     string
	JWTAudience   string
	TLSIdentities string // inline JSON {"spiffe://…": ["scope"], "CN=…": […]}
	Limits        Limits
	// InternalKeys are the API keys the platform's own clients present (AUDIT_CLIENT_API_KEY): their
	// principals get a budget of their own, never shared with callers. Set by the platform.
	InternalKeys []string
	// DevKeyFile, set in development mode only, holds a generated API key with every scope.
	DevKeyFile string
}

// LoadConfig reads the AUTH_* and RATE_LIMIT_* variables. In development mode a development API key is
// kept in DATA_DIR/dev-api-key.
func LoadConfig(env *config.Env, development bool) Config {
	c := Config{
		Disabled:      env.Bool("AUTH_DISABLED", false),
		APIKeys:       env.String("AUTH_API_KEYS", ""),
		APIKeysFile:   env.String("AUTH_API_KEYS_FILE", ""),
		JWTKeysFile:   env.String("AUTH_JWT_KEYS_FILE", ""),
		JWTIssuer:     env.String("AUTH_JWT_ISSUER", ""),
		JWTAudience:   env.String("AUTH_JWT_AUDIENCE", ""),
		TLSIdentities: env.String("AUTH_TLS_IDENTITIES", ""),
		Limits: Limits{
			Read:     loadRate(env, "RATE_LIMIT_READ_PER_SECOND", "RATE_LIMIT_READ_BURST", DefaultLimits.Read),
			Write:    loadRate(env, "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", DefaultLimits.Write),
			Admin:    loadRate(env, "RATE_LIMIT_ADMIN_PER_SECOND", "RATE_LIMIT_ADMIN_BURST", DefaultLimits.Admin),
			Failures: loadRate(env, "RATE_LIMIT_FAILED_PER_SECOND", "RATE_LIMIT_FAILED_BURST", DefaultLimits.Failures),
		},
	}
	if development {
		c.DevKeyFile = filepath.Join(env.String("DATA_DIR", "./data"), "dev-api-key")
	}
	if c.JWTKeysFile != "" && (c.JWTIssuer == "" || c.JWTAudience == "") {
		env.Fail("AUTH_JWT_KEYS_FILE", "needs AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE")
	}
	if !development && !c.Disabled && c.APIKeys == "" && c.APIKeysFile == "" && c.JWTKeysFile == "" && c.TLSIdentities == "" {
		env.Fail("AUTH_API_KEYS_FILE", "(or AUTH_API_KEYS, AUTH_JWT_KEYS_FILE, AUTH_TLS_IDENTITIES) must be set outside development mode; set AUTH_DISABLED=true to run without authentication")
	}
	return c
}

// DefaultLimits fit the traffic each class sees: one agent fleet sharing a key reads tokens thousands of
// times a second; administration is rare, so a stolen admin key is slow to use; a client that fails
// authentication or authorisation gets a handful of tries a second per address.
var DefaultLimits = Limits{
	Read:     Rate{PerSecond: 10000, Burst: 20000},
	Write:    Rate{PerSecond: 1000, Burst: 2000},
	Admin:    Rate{PerSecond: 10, Burst: 20},
	Failures: Rate{PerSecond: 5, Burst: 20},
}

// loadRate reads a rate and its burst.
func loadRate(env *config.Env, rateVar, burstVar string, def Rate) Rate {
	return Rate{
		PerSecond: float64(env.Int(rateVar, int(def.PerSecond), 0, 1_000_000)),
		Burst:     env.Int(burstVar, def.Burst, 1, 1_000_000),
	}
}

// Security holds what a process's gRPC servers enforce: who may call, and how often.
type Security struct {
	Authenticator *Authenticator
	Limits        *Limiters
	// DevKey is the development API key (development mode only; printed by `make run`).
	DevKey string
	// InternalKey is the key the platform's own clients use in development mode (derived from the
	// development key, so that every process of `make run` derives the same one); "" otherwise.
	InternalKey string
}

// Build loads the keys and returns the process's Security. Files are re-read when they change.
func (c Config) Build(log *slog.Logger) (*Security, error) {
	var internal []string
	for _, k := range c.InternalKeys {
		if id, err := ParseAPIKey(k); err == nil {
			internal = append(internal, "apikey:"+id)
		}
	}
	s := &Security{Authenticator: &Authenticator{Disabled: c.Disabled}}
	s.Limits = NewLimiters(c.Limits, internal...)
	if c.Disabled {
		log.Warn("AUTH_DISABLED=true: every caller is trusted with every scope; never run like this where untrusted clients can connect")
		return s, nil
	}
	var static APIKeySet
	if c.APIKeys != "" {
		var err error
		if static, err = ParseAPIKeys([]byte(c.APIKeys)); err != nil {
			return nil, fmt.Errorf("AUTH_API_KEYS: %w", err)
		}
	}
	if c.DevKeyFile != "" {
		key, err := devKey(c.DevKeyFile)
		if err != nil {
			return nil, err
		}
		s.DevKey = key
		if static == nil {
			static = APIKeySet{}
		}
		static["dev"] = APIKey{ID: "dev", SHA256: HashAPIKey(key), Scopes: AllScopes}
		// The services' own calls (audit writes; the webhook service's access tokens for Zoho channels)
		// use a key of their own, so that a developer's calls with the development key and the denial
		// log never spend one budget.
		s.InternalKey = DevInternalKey(key)
		static[devInternalID] = APIKey{ID: devInternalID, SHA256: HashAPIKey(s.InternalKey), Scopes: []string{ScopeAuditWrite, ScopeTokenRead}}
		s.Limits = NewLimiters(c.Limits, append(internal, "apikey:"+devInternalID)...)
	}
	switch {
	case c.APIKeysFile != "":
		// The file is the live control: merged once per reload, its entry wins over a static one with the
		// same id, so that revoking or expiring a key there always takes effect.
		file, err := watchFile(c.APIKeysFile, "API key", func(raw []byte) (APIKeySet, error) {
			set, err := ParseAPIKeys(raw)
			if err != nil {
				return nil, err
			}
			for id, k := range static {
				if _, inFile := set[id]; !inFile {
					set[id] = k
				}
			}
			return set, nil
		}, log)
		if err != nil {
			return nil, fmt.Errorf("AUTH_API_KEYS_FILE: %w", err)
		}
		s.Authenticator.APIKeys = file.Get
	case static != nil:
		s.Authenticator.APIKeys = func() APIKeySet { return static }
	}
	if c.JWTKeysFile != "" {
		keys, err := watchFile(c.JWTKeysFile, "JWT key", ParseJWKS, log)
		if err != nil {
			return nil, fmt.Errorf("AUTH_JWT_KEYS_FILE: %w", err)
		}
		s.Authenticator.JWT = &JWTVerifier{Keys: keys.Get, Issuer: c.JWTIssuer, Audience: c.JWTAudience, Leeway: 30 * time.Second}
	}
	if c.TLSIdentities != "" {
		ids, err := ParseTLSIdentities([]byte(c.TLSIdentities))
		if err != nil {
			return nil, fmt.Errorf("AUTH_TLS_IDENTITIES: %w", err)
		}
		s.Authenticator.TLS = ids
	}
	return s, nil
}

// keyFileInterval is how often key files are checked for changes (at most, on use). Tests set it to zero
// to see a change on the next call instead of waiting for the clock.
var keyFileInterval = time.Second

// watchFile parses a file, re-reading it when it changes; a bad new version keeps the previous one.
func watchFile[T any](path, what string, parse func([]byte) (T, error), log *slog.Logger) (*filewatch.Cached[T], error) {
	return filewatch.New([]string{path}, keyFileInterval, func() (T, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("cannot read the %s file", what)
		}
		return parse(raw)
	}, func(err error) { log.Error(what+" file not reloaded; keeping the previous keys", "error", err.Error()) })
}

const devInternalID = "dev-internal"

// DevInternalKey derives the development-mode internal key from the development key: every process of
// `make run` reads the same development key, so all of them agree on it without another file.
func DevInternalKey(devKey string) string {
	m := hmac.New(sha256.New, []byte(devKey))
	m.Write([]byte("sergas internal audit client"))
	return apiKeyPrefix + devInternalID + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// devKey reads the development key, creating it (mode 0600) on first use.
func devKey(path string) (string, error) {
	if raw, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(raw))
		if _, err := ParseAPIKey(key); err != nil {
			return "", fmt.Errorf("%s does not hold an API key; delete it to make a new one", path)
		}
		return key, nil
	}
	key, err := NewAPIKey("dev")
	if err != nil {
		return "", err
	}
	// Processes starting together on one DATA_DIR either make the key or read a complete one (a file
	// created empty and written after let a second process read it empty and refuse to start).
	if err := keyfile.CreateOnce(path, []byte(key+"\n")); errors.Is(err, os.ErrExist) {
		return devKey(path) // another process made it first
	} else if err != nil {
		return "", err
	}
	return key, nil
}
