package token_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/token/zohotest"
)

// refreshCount reads token_refreshes_total{provider,result} from the registry /metrics serves.
func refreshCount(t *testing.T, prov, result string) float64 {
	t.Helper()
	v, _ := refreshSeries(t, prov, result)
	return v
}

// refreshSeries reads token_refreshes_total{provider,result} and whether the series is exported.
func refreshSeries(t *testing.T, prov, result string) (float64, bool) {
	t.Helper()
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "token_refreshes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["provider"] == prov && labels["result"] == result {
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// Each refresh is counted once by provider and result: a success (however many callers shared it), a
// provider failure by its class, and the refresh budget spent without asking the provider. The provider
// is named for the test alone, so that the counts of tests running beside it do not mix in.
func TestRefreshOutcomesAreCounted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbc db.Config) {
		z := zohotest.New(t)
		prov := "metrics-" + strings.ReplaceAll(string(dbc.Dialect), "_", "-")
		env := strings.ToUpper(strings.ReplaceAll(prov, "-", "_"))
		r := startReplica(t, config_(t, dbc, z, map[string]string{
			"TOKEN_PROVIDERS": prov, "TOKEN_PROVIDER_" + env + "_TYPE": "zoho", "TOKEN_PROVIDER_" + env + "_ACCOUNTS_URL": z.AccountsURL(),
			"TOKEN_PROVIDER_" + env + "_CLIENT_ID": z.ClientID, "TOKEN_PROVIDER_" + env + "_CLIENT_SECRET": z.ClientSecret,
			"TOKEN_PROVIDER_" + env + "_REFRESH_LIMIT": "2",
		}))
		ctx := context.Background()
		createConn := func(id string, expire time.Time) {
			t.Helper()
			_, err := r.client.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: prov, ConnectionId: id,
				AccessToken: "1000.at.initial-" + id, RefreshToken: z.IssueRefreshToken(), ExpireTime: timestamppb.New(expire),
				ApiDomain: "https://www.zohoapis.eu"})
			if err != nil {
				t.Fatal(err)
			}
		}
		refresh := func(id string) error {
			_, err := r.client.RefreshConnection(ctx, &tokenv1.RefreshConnectionRequest{Provider: prov, ConnectionId: id})
			return err
		}
		// Every result is exported at 0 from the start, so that increase() sees the first of each.
		for _, res := range []string{"success", "invalid_grant", "invalid_client", "rate_limited", "transient", "bad_response",
			"budget_spent", "not_configured", "unseal_failed", "store_failed"} {
			if n, ok := refreshSeries(t, prov, res); n != 0 || !ok {
				t.Fatalf("%s before any refresh: %v (exported: %v), want 0", res, n, ok)
			}
		}

		// Expired: ten callers share one refresh, counted once.
		createConn("expired", time.Now().Add(-time.Minute))
		done := make(chan error, 10)
		for range 10 {
			go func() {
				_, err := r.client.GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: prov, ConnectionId: "expired"})
				done <- err
			}()
		}
		for range 10 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if n := z.Refreshes(); n != 1 {
			t.Fatalf("the provider saw %d refreshes, want 1", n)
		}
		if n := refreshCount(t, prov, "success"); n != 1 {
			t.Fatalf("success counted %v, want 1", n)
		}

		createConn("flaky", time.Now().Add(time.Hour))
		z.FailNext(zohotest.ServerError)
		if err := refresh("flaky"); err == nil {
			t.Fatal("a refresh the provider failed succeeded")
		}
		if n := refreshCount(t, prov, "transient"); n != 1 {
			t.Fatalf("transient counted %v, want 1", n)
		}

		// The refresh budget of two per connection is spent by two refreshes: the third is refused before
		// the provider is asked.
		createConn("busy", time.Now().Add(time.Hour))
		for range 2 {
			if err := refresh("busy"); err != nil {
				t.Fatal(err)
			}
		}
		asked := z.Refreshes()
		if err := refresh("busy"); err == nil {
			t.Fatal("a refresh beyond the budget succeeded")
		}
		if z.Refreshes() != asked {
			t.Fatal("the provider was asked beyond the budget")
		}
		if n := refreshCount(t, prov, "budget_spent"); n != 1 {
			t.Fatalf("budget_spent counted %v, want 1", n)
		}

		createConn("revoked", time.Now().Add(time.Hour))
		z.FailNext(zohotest.InvalidCode)
		if err := refresh("revoked"); err == nil {
			t.Fatal("a refresh with a dead refresh token succeeded")
		}
		if n := refreshCount(t, prov, "invalid_grant"); n != 1 {
			t.Fatalf("invalid_grant counted %v, want 1", n)
		}
		if n := refreshCount(t, prov, "success"); n != 3 {
			t.Fatalf("success counted %v, want 3", n)
		}
	})
}
