package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/filewatch"
)

// The gateway is the only public door for webhooks: it hands them to WebhookService.Ingest under its own
// identity, which needs the webhook:ingest scope. That identity is an API key (below) or the gateway's
// client certificate mapped to the scope in AUTH_TLS_IDENTITIES (then no key is needed).

// webhookKeyFileInterval is how often GATEWAY_WEBHOOK_API_KEY_FILE is checked for changes (at most, on
// use), as the services check AUTH_API_KEYS_FILE.
const webhookKeyFileInterval = time.Second

// loadWebhookCredential reads GATEWAY_WEBHOOK_API_KEY or GATEWAY_WEBHOOK_API_KEY_FILE. A key file that
// cannot be read at start is reported by name; one that changes is re-read, and a bad new version keeps
// the previous key. In development without either, the development key is read from DATA_DIR once the
// services have created it.
func loadWebhookCredential(env *config.Env, development bool) func() string {
	key := env.String("GATEWAY_WEBHOOK_API_KEY", "")
	path := env.String("GATEWAY_WEBHOOK_API_KEY_FILE", "")
	switch {
	case key != "" && path != "":
		env.Fail("GATEWAY_WEBHOOK_API_KEY_FILE", "must not be set together with GATEWAY_WEBHOOK_API_KEY")
	case key != "":
		return func() string { return key }
	case path != "":
		f, err := filewatch.New([]string{path}, webhookKeyFileInterval, func() (string, error) { return readKeyFile(path) }, nil)
		if err != nil {
			env.Fail("GATEWAY_WEBHOOK_API_KEY_FILE", err.Error())
			return nil
		}
		return f.Get
	case development:
		return lazyKeyFile(filepath.Join(env.String("DATA_DIR", "./data"), "dev-api-key"))
	}
	return nil
}

// readKeyFile reads a key file's single line; the error never shows the content or the path.
func readKeyFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", errors.New("cannot read the key file")
	}
	key := strings.TrimSpace(string(raw))
	if key == "" || strings.ContainsAny(key, "\r\n") {
		return "", errors.New("the key file must hold one API key")
	}
	return key, nil
}

// lazyKeyFile returns the key in path once the file exists (the development key is created by the
// first service to start, which may come after the gateway).
func lazyKeyFile(path string) func() string {
	var mu sync.Mutex
	var key string
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		if key == "" {
			key, _ = readKeyFile(path)
		}
		return key
	}
}
