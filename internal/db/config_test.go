package db

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sergas/core/internal/config"
)

func TestLoadConfigResolution(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		dialect Dialect
		sqlite  string
		pgHas   string
	}{
		{"default sqlite file per service", map[string]string{}, SQLite, filepath.Join("data", "audit.db"), ""},
		{"data dir", map[string]string{"DATA_DIR": "/var/lib/sergas"}, SQLite, "/var/lib/sergas/audit.db", ""},
		{"service url wins", map[string]string{"AUDIT_DATABASE_URL": "sqlite:///tmp/a.db", "DATABASE_URL": "postgres://h/db"}, SQLite, "/tmp/a.db", ""},
		{"shared sqlite url gets the service name", map[string]string{"DATABASE_URL": "sqlite:///srv/sergas.db"}, SQLite, "/srv/sergas-audit.db", ""},
		{"relative sqlite url", map[string]string{"DATABASE_URL": "sqlite://rel/x.db"}, SQLite, "rel/x-audit.db", ""},
		{"shared postgres url", map[string]string{"DATABASE_URL": "postgres://u:p@db:5432/sergas"}, Postgres, "", "db:5432"},
		{"host form", map[string]string{"DATABASE_HOST": "pg.internal", "DATABASE_USER": "svc", "DATABASE_PASSWORD": "p@ss/word", "DATABASE_NAME": "core"}, Postgres, "", "svc:p%40ss%2Fword@pg.internal:5432/core"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := config.FromMap(c.env)
			got := LoadConfig(env, "audit")
			if err := env.Err(); err != nil {
				t.Fatal(err)
			}
			if got.Dialect != c.dialect || got.SQLitePath != c.sqlite || !strings.Contains(got.PostgresURL, c.pgHas) {
				t.Fatalf("got %+v", got)
			}
			if got.Dialect == Postgres && got.Schema != "audit" {
				t.Fatalf("schema %q", got.Schema)
			}
		})
	}
}

func TestLoadConfigErrorsNameVariablesAndHideSecrets(t *testing.T) {
	env := config.FromMap(map[string]string{
		"TOKEN_DATABASE_URL": "mysql://root:topsecret@x/db", "DATABASE_POOL_SIZE": "0", "TOKEN_DATABASE_SCHEMA": "Bad-Name",
	})
	LoadConfig(env, "token")
	err := env.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"TOKEN_DATABASE_URL", "DATABASE_POOL_SIZE", "TOKEN_DATABASE_SCHEMA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestRedactedHidesPassword(t *testing.T) {
	c := Config{Dialect: Postgres, PostgresURL: "postgres://u:topsecret@db:5432/sergas", Schema: "token"}
	if r := c.Redacted(); strings.Contains(r, "topsecret") || !strings.Contains(r, "db:5432") {
		t.Fatalf("redacted = %q", r)
	}
}
