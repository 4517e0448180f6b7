package provider_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/token/provider"
	"github.com/sergas/core/services/token/zohotest"
)

func zohoClient(t *testing.T, z *zohotest.Server) *provider.Client {
	t.Helper()
	env := config.FromMap(map[string]string{"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": z.AccountsURL(),
		"TOKEN_PROVIDER_ZOHO_CLIENT_ID": z.ClientID, "TOKEN_PROVIDER_ZOHO_CLIENT_SECRET": z.ClientSecret})
	ps := provider.LoadConfig(env, 2*time.Second)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	return ps["zoho"]
}

func TestZohoRefreshAndErrorClasses(t *testing.T) {
	z := zohotest.New(t)
	c := zohoClient(t, z)
	ctx := context.Background()
	rt := z.IssueRefreshToken()
	tok, err := c.Refresh(ctx, rt, "", "")
	if err != nil || !z.Valid(tok.AccessToken) || tok.ExpiresIn != time.Hour || tok.APIDomain != "https://www.zohoapis.eu" || tok.TokenType != "Bearer" {
		t.Fatalf("refresh: %+v %v", tok, err)
	}
	cases := []struct {
		fail zohotest.Failure
		want provider.Class
	}{
		{zohotest.InvalidCode, provider.ClassInvalidGrant},
		{zohotest.AccessDenied, provider.ClassRateLimited},
		{zohotest.ServerError, provider.ClassTransient},
		{zohotest.Garbage, provider.ClassBadResponse},
	}
	for _, cs := range cases {
		z.FailNext(cs.fail)
		_, err := c.Refresh(ctx, rt, "", "")
		if class, _ := provider.ClassOf(err); class != cs.want {
			t.Errorf("failure %d classified %q, want %q", cs.fail, class, cs.want)
		}
		if err != nil && strings.Contains(err.Error(), rt) {
			t.Errorf("error repeats the refresh token")
		}
	}
	if _, err := c.Refresh(ctx, rt, "someone-else", "wrong"); !isClass(err, provider.ClassInvalidClient) {
		t.Errorf("wrong client: %v", err)
	}
	if _, err := c.Refresh(ctx, "1000.rt.unknown", "", ""); !isClass(err, provider.ClassInvalidGrant) {
		t.Errorf("unknown refresh token: %v", err)
	}
	if !provider.ClassInvalidGrant.Permanent() || provider.ClassTransient.Permanent() {
		t.Error("permanence of classes")
	}
}

func isClass(err error, c provider.Class) bool {
	got, _ := provider.ClassOf(err)
	return err != nil && got == c
}

func TestZohoExchangeAndRevoke(t *testing.T) {
	z := zohotest.New(t)
	c := zohoClient(t, z)
	ctx := context.Background()
	code := z.IssueCode()
	tok, err := c.Exchange(ctx, code, "https://app.example/callback", "", "")
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %+v %v", tok, err)
	}
	if _, err := c.Exchange(ctx, code, "", "", ""); !isClass(err, provider.ClassInvalidGrant) {
		t.Fatalf("reused code: %v", err)
	}
	if err := c.Revoke(ctx, tok.RefreshToken, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, tok.RefreshToken, "", ""); !isClass(err, provider.ClassInvalidGrant) {
		t.Fatalf("refresh after revoke: %v", err)
	}
}

func TestUnreachableProviderIsTransient(t *testing.T) {
	c := &provider.Client{Name: "x", Kind: "oauth2", TokenURL: "http://127.0.0.1:1/token", HTTP: &http.Client{Timeout: time.Second}}
	if _, err := c.Refresh(context.Background(), "rt", "id", "secret"); !isClass(err, provider.ClassTransient) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestDataCentres(t *testing.T) {
	for dc, want := range map[string]string{"eu": "https://accounts.zoho.eu/oauth/v2/token", "au": "https://accounts.zoho.com.au/oauth/v2/token",
		"ca": "https://accounts.zohocloud.ca/oauth/v2/token", "cn": "https://accounts.zoho.com.cn/oauth/v2/token"} {
		env := config.FromMap(map[string]string{"TOKEN_PROVIDER_ZOHO_DATA_CENTER": dc})
		if got := provider.LoadConfig(env, time.Second)["zoho"].TokenURL; got != want || env.Err() != nil {
			t.Errorf("%s: %s %v", dc, got, env.Err())
		}
	}
	env := config.FromMap(map[string]string{"TOKEN_PROVIDERS": "zoho,acme", "TOKEN_PROVIDER_ZOHO_DATA_CENTER": "mars"})
	provider.LoadConfig(env, time.Second)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "TOKEN_PROVIDER_ZOHO_DATA_CENTER") || !strings.Contains(err.Error(), "TOKEN_PROVIDER_ACME_TOKEN_URL") {
		t.Fatalf("bad provider config: %v", err)
	}
}
