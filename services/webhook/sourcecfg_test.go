package webhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
)

func loadErr(vars map[string]string) (Config, error) {
	env := config.FromMap(vars)
	c := LoadConfig(env)
	return c, env.Err()
}

// A bad sources file stops the service at start with the problem named and no secret shown.
func TestBadSourcesFileRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	secret := "this-secret-must-never-show-up"
	for _, c := range []struct{ content, want string }{
		{`{"sources": [`, "not valid JSON"},
		{`{"sources": [{"name": "a", "scheme": "hmac", "secrets": ["` + secret + `"]}]}`, `source "a": hmac needs`},
		{`{"sources": [{"name": "a", "scheme": "hmac", "secret": "` + secret + `"}]}`, `unknown field "secret"`},
		{`{"sources": [{"name": "a", "scheme": "none"}, {"name": "a", "scheme": "none"}]}`, "appears twice"},
		{`{"sources": [{"name": "a"}]}`, "scheme is missing"},
		{`{"sources": [{"name": "a", "scheme": "standard-webhooks", "secrets": ["whsec_` + secret + `"]}]}`, "base64"},
	} {
		path := filepath.Join(dir, "s.json")
		writeFile(t, path, c.content)
		_, err := loadErr(map[string]string{"WEBHOOK_SOURCES_FILE": path})
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SOURCES_FILE") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want WEBHOOK_SOURCES_FILE and %q", c.content, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	if _, err := loadErr(map[string]string{"WEBHOOK_SOURCES_FILE": filepath.Join(dir, "missing.json")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(dir, "ok.json")
	writeFile(t, path, testSourcesFile())
	if _, err := loadErr(map[string]string{"WEBHOOK_SOURCES_FILE": path, "WEBHOOK_SOURCES": "zoho:none"}); err == nil || !strings.Contains(err.Error(), "WEBHOOK_SOURCES") {
		t.Errorf("both forms: %v", err)
	}
}

// The file is re-read when it changes: a good version takes effect (secrets rotate without a restart),
// a bad one keeps the previous sources and is counted.
func TestSourcesFileReload(t *testing.T) {
	h, _ := startWithSources(t, db.SQLite, map[string]string{})
	path := h.srv.cfg.SourcesFile
	ctx := from(t, "198.51.100.7")
	body := `{"n":1}`
	github := func(secret, id string) error {
		_, err := h.client.Ingest(ctx, signed("github", body, "X-Hub-Signature-256", githubSig(secret, body), "X-GitHub-Delivery", id))
		return err
	}
	if err := github(hmacSecretOld, "1"); err != nil {
		t.Fatal(err)
	}
	rotated := strings.Replace(testSourcesFile(), `"`+hmacSecretOld+`", `, "", 1)
	writeFile(t, path, rotated+"\n") // another size, so the change shows even within the file system's time resolution
	if err := github(hmacSecretOld, "2"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("old secret after it was removed from the file: %v", err)
	}
	if err := github(hmacSecretNew, "3"); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	errorsBefore := testutil.ToFloat64(reloadErrors)
	writeFile(t, path, `{"sources": [{"name": "github", "scheme": "hmac"}]}`)
	if err := github(hmacSecretNew, "4"); err != nil {
		t.Fatalf("after a bad reload the previous sources must stay: %v", err)
	}
	if got := testutil.ToFloat64(reloadErrors); got <= errorsBefore {
		t.Fatalf("bad reload not counted: %v -> %v", errorsBefore, got)
	}
}

// The environment form: name:scheme with secrets and channels in WEBHOOK_SOURCE_<NAME>_*; a bare name
// is unverified only in development, and refused in production.
func TestSourcesFromEnvironment(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secretFile, hmacSecretNew+"\n")
	c, err := loadErr(map[string]string{
		"WEBHOOK_SOURCES":                  "zoho-crm:zoho-crm,legacy:hmac,svix:standard-webhooks",
		"WEBHOOK_SOURCE_ZOHO_CRM_CHANNELS": "1000000068001=tok-1, 1000000068002=env:TOKEN_2",
		"TOKEN_2":                          "tok-2",
		"WEBHOOK_SOURCE_LEGACY_SECRETS":    hmacSecretOld + ",file:" + secretFile,
		"WEBHOOK_SOURCE_SVIX_SECRETS":      whsec('n'),
	})
	if err != nil {
		t.Fatal(err)
	}
	set := c.sources.get()
	if len(set) != 3 || set["zoho-crm"].scheme != SchemeZohoCRM || set["legacy"].scheme != SchemeHMAC || set["svix"].scheme != SchemeStandardWebhooks {
		t.Fatalf("sources %v", set)
	}
	body := `{"a":1}`
	for _, secret := range []string{hmacSecretOld, hmacSecretNew} {
		if _, reason := check(set["legacy"], body, verifyNow, "X-Zoho-Signature", zohoSig(secret, body)); reason != "" {
			t.Errorf("legacy hmac: %s", reason)
		}
	}
	if _, reason := check(set["zoho-crm"], zohoBody(1000000068002, "tok-2", 1, "1"), verifyNow); reason != "" {
		t.Errorf("zoho channel from env: %s", reason)
	}

	if _, err := loadErr(map[string]string{"WEBHOOK_SOURCES": "zoho"}); err == nil || !strings.Contains(err.Error(), "zoho:none") {
		t.Errorf("bare name in production: %v", err)
	}
	if _, err := loadErr(map[string]string{"WEBHOOK_SOURCES": "github:hmac"}); err == nil || !strings.Contains(err.Error(), "at least one secret") {
		t.Errorf("hmac without secrets: %v", err)
	}
	dev, err := loadErr(map[string]string{"WEBHOOK_SOURCES": "zoho", "SERGAS_ENV": "development"})
	if err != nil || dev.sources.get()["zoho"].scheme != SchemeNone {
		t.Errorf("bare name in development: %v", err)
	}
	if c, err := loadErr(map[string]string{}); err != nil || len(c.sources.get()) != 0 {
		t.Errorf("production without sources: %v %v, want none (every delivery 404)", err, c.sources.get())
	}
	if c, err := loadErr(map[string]string{"SERGAS_ENV": "development"}); err != nil || c.sources.get()["zoho"].scheme != SchemeNone {
		t.Errorf("development default: %v", err)
	}
	explicit, err := loadErr(map[string]string{"WEBHOOK_SOURCES": "test:none"})
	if err != nil || explicit.sources.get()["test"].scheme != SchemeNone {
		t.Errorf("explicit none in production: %v", err)
	}
}

// Secrets given by reference are read at load; the configuration holds only the reference.
func TestSecretReferences(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "gh")
	writeFile(t, secretFile, hmacSecretNew)
	path := filepath.Join(dir, "s.json")
	writeFile(t, path, `{"sources": [{"name": "github", "scheme": "hmac", "secrets": ["file:`+secretFile+`", "env:GH_OLD"],
		"hmac": {"header": "X-Hub-Signature-256", "prefix": "sha256="}}]}`)
	c, err := loadErr(map[string]string{"WEBHOOK_SOURCES_FILE": path, "GH_OLD": hmacSecretOld})
	if err != nil {
		t.Fatal(err)
	}
	body := "b"
	for _, s := range []string{hmacSecretNew, hmacSecretOld} {
		if _, reason := check(c.sources.get()["github"], body, verifyNow, "X-Hub-Signature-256", githubSig(s, body)); reason != "" {
			t.Errorf("secret by reference: %s", reason)
		}
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), hmacSecretNew) {
		t.Fatal("test setup: the file should hold only references")
	}
}
