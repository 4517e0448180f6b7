package webhook

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
)

// What the service logs about sources and refusals names sources, schemes and reasons, never a secret,
// a signature or a body: at start, on refusals of every kind, and on a bad reload of a file that holds
// secrets inline.
func TestLogsHoldNoSecretOrBody(t *testing.T) {
	logs := &testutil.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, _ := startWithSources(t, db.SQLite, map[string]string{}, WithLogger(log))
	h.srv.logSources()
	ctx := from(t, "198.51.100.7")
	body := `{"body-marker":"b0dy-m4rker"}`
	forged := githubSig("forged-secret-0123456789", body)
	h.client.Ingest(ctx, signed("github", body, "X-Hub-Signature-256", forged))
	h.client.Ingest(ctx, signed("zoho", zohoBody(1000000068001, "wrong-tok-m4rker", 1, "1")))
	h.client.Ingest(ctx, signed("zoho", "b0dy-m4rker not json"))
	h.client.Ingest(ctx, signed("small", strings.Repeat("b0dy-m4rker", 4)))
	// A bad reload of a file whose secrets are inline.
	writeFile(t, h.srv.cfg.SourcesFile, `{"sources": [{"name": "github", "scheme": "hmac", "secrets": ["`+hmacSecretNew+`"]}]}`)
	h.client.Ingest(ctx, signed("github", body))
	out := logs.String()
	for _, secret := range []string{hmacSecretOld, hmacSecretNew, whsec('o')[6:], whsec('n')[6:], "tok-1", "wrong-tok-m4rker", "b0dy-m4rker", forged[7:]} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"scheme=none", "accepts unverified deliveries", "reason=bad_signature", "reason=malformed_body",
		"reason=body_too_large", "not reloaded"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
