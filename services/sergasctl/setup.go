package sergasctl

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/migrate"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
)

func init() {
	register(&command{
		name:    "setup",
		summary: "create the data directory, databases or schemas, run migrations and (in development) make the keys; safe to repeat",
		usage: `setup [--service token|audit|webhook|all] [--json]

Creates what each selected service needs before it first starts, exactly as the service would: the
SQLite file (mode 0600) in a private DATA_DIR, or the PostgreSQL schema; then applies the binary's
migrations. With SERGAS_ENV=development it also makes the development keys the services would make
under DATA_DIR (dev-token-key, dev-webhook-key, dev-audit-signing-key and, for --service all,
dev-api-key). Outside development keys are never made: set TOKEN_ENCRYPTION_KEYS,
WEBHOOK_ENCRYPTION_KEYS and AUDIT_SIGNING_KEY, then run "sergasctl validate".
Running it again changes nothing that is already in place.`,
		run: runSetup,
	})
}

// setupResult is what setup did for one service.
type setupResult struct {
	Service  string   `json:"service"`
	Database string   `json:"database"`
	Applied  int      `json:"migrations_applied"`
	Version  int      `json:"schema_version"`
	Keys     []string `json:"keys"`
}

func runSetup(ctx context.Context, c *cmdCtx) int {
	targets, err := loadTargets(c.env, c.opts.service)
	if err != nil {
		return c.configFail("setup", err)
	}
	var out []*setupResult
	for _, t := range targets {
		r, err := setupOne(ctx, c, t)
		if err != nil {
			return c.fail("setup", err)
		}
		out = append(out, r)
	}
	var apiKey string
	if c.opts.service == "all" && len(targets) > 0 && targets[0].Dev {
		// The development API key belongs to the platform, not to one service; the gateway and every
		// service of `make run` read the same file.
		cfg := auth.LoadConfig(c.env, true)
		existed := fileExists(cfg.DevKeyFile)
		if _, err := cfg.Build(c.log); err != nil {
			return c.fail("setup", &unreachable{fmt.Errorf("development API key: %w", err)})
		}
		apiKey = keyNote(cfg.DevKeyFile, existed)
	}
	if c.opts.json {
		doc := map[string]any{"services": out}
		if apiKey != "" {
			doc["api_key"] = apiKey
		}
		_ = writeJSON(c.Stdout, doc)
		return ExitOK
	}
	for _, r := range out {
		fmt.Fprintf(c.Stdout, "%-8s %s: schema version %d (%d migration(s) applied now)\n", r.Service, r.Database, r.Version, r.Applied)
		for _, k := range r.Keys {
			fmt.Fprintf(c.Stdout, "         %s\n", k)
		}
	}
	if apiKey != "" {
		fmt.Fprintf(c.Stdout, "platform %s\n", apiKey)
	}
	return ExitOK
}

func setupOne(ctx context.Context, c *cmdCtx, t *target) (*setupResult, error) {
	cn, err := openCreate(ctx, t)
	if err != nil {
		return nil, err
	}
	defer cn.Close()
	ms, _, dialect, err := cn.migrations()
	if err != nil {
		return nil, err
	}
	applied, err := migrate.Up(ctx, cn.SQL, dialect, ms)
	if err != nil {
		return nil, explainBusy(cn, t.Name+": migrate", err)
	}
	r := &setupResult{Service: t.Name, Database: t.DB.Redacted(), Applied: applied, Version: len(ms), Keys: []string{}}
	r.Keys, err = setupKeys(c, t)
	return r, err
}

// setupKeys loads each key the service loads at start, through the service's own code, which makes the
// development key files when they are missing. It reports what it found or made, never key material.
func setupKeys(c *cmdCtx, t *target) ([]string, error) {
	var notes []string
	switch t.Name {
	case "token":
		existed := fileExists(t.Token.DevKeyFile)
		ring, err := token.LoadKeyring(*t.Token)
		if err != nil {
			return nil, &unreachable{fmt.Errorf("token keyring: %w", err)}
		}
		notes = append(notes, ringNote("TOKEN_ENCRYPTION_KEYS", t.Token.DevKeyFile, existed, ring.IDs()))
	case "webhook":
		existed := fileExists(t.Webhook.Channels.DevKeyFile)
		ring, err := webhook.LoadKeyring(*t.Webhook)
		if err != nil {
			return nil, &unreachable{fmt.Errorf("webhook keyring: %w", err)}
		}
		if ring == nil {
			notes = append(notes, "WEBHOOK_ENCRYPTION_KEYS not set: Zoho channels and push subscriptions are off")
		} else {
			notes = append(notes, ringNote("WEBHOOK_ENCRYPTION_KEYS", t.Webhook.Channels.DevKeyFile, existed, ring.IDs()))
		}
	case "audit":
		existed := fileExists(t.Audit.Signing.DevKeyFile)
		id, err := t.Audit.Signing.SigningKeyID(c.log)
		if err != nil {
			return nil, &unreachable{fmt.Errorf("audit signing key: %w", err)}
		}
		switch {
		case id == "":
			notes = append(notes, "no checkpoint signing key (AUDIT_SIGNING_KEY): checkpoints are off")
		case t.Audit.Signing.DevKeyFile != "":
			notes = append(notes, keyNote(t.Audit.Signing.DevKeyFile, existed)+" (checkpoint signing key "+id+")")
		default:
			notes = append(notes, "AUDIT_SIGNING_KEY loads: checkpoint signing key "+id)
		}
	}
	return notes, nil
}

func ringNote(variable, devFile string, existed bool, ids []string) string {
	if devFile == "" {
		return fmt.Sprintf("%s parses: key ids %v", variable, ids)
	}
	return keyNote(devFile, existed)
}

func keyNote(file string, existed bool) string {
	if existed {
		return "development key " + file + " kept as it was"
	}
	return "development key " + file + " created (mode 0600)"
}

func fileExists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
