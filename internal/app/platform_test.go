package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
)

// Production without an audit credential runs (the audit service itself may be what is starting) but says
// at error level, naming the variable, that denials and token events will not be recorded.
func TestProductionWithoutAuditKeyWarnsLoudly(t *testing.T) {
	key := authtest.NewKey(t, "caller", "token:read")
	for _, c := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"production without key", map[string]string{}, true},
		{"production with key", map[string]string{"AUDIT_CLIENT_API_KEY": key.Key}, false},
		{"development", map[string]string{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir()}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars := map[string]string{"TLS_DISABLED": "true", "AUTH_API_KEYS": authtest.JSON(key)}
			for k, v := range c.env {
				vars[k] = v
			}
			env := config.FromMap(vars)
			p := LoadPlatform(env)
			if err := env.Err(); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			if _, err := p.Start(t.Context(), log); err != nil {
				t.Fatal(err)
			}
			if vars["SERGAS_ENV"] == "" && !strings.Contains(buf.String(), "TLS_DISABLED") {
				t.Fatalf("the production start's log was not captured; the check below would pass vacuously:\n%s", buf.String())
			}
			got := false
			for _, line := range strings.Split(buf.String(), "\n") {
				if strings.Contains(line, "level=ERROR") && strings.Contains(line, "AUDIT_CLIENT_API_KEY") && strings.Contains(line, "NOT reach the audit log") {
					got = true
				}
			}
			if got != c.want {
				t.Fatalf("loud warning logged = %v, want %v; log:\n%s", got, c.want, buf.String())
			}
		})
	}
}
