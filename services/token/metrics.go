package token

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sergas/core/services/token/provider"
)

// Refresh results other than success and the provider's failure classes (provider.Class*): the refresh
// ended before or after the provider call.
const (
	refreshSuccess = "success"
	// refreshBudgetSpent: the provider's refresh budget (TOKEN_PROVIDER_<NAME>_REFRESH_LIMIT) was spent,
	// so the provider was not asked.
	refreshBudgetSpent = "budget_spent"
	// refreshNotConfigured: no such provider, no client credentials or no refresh token to use.
	refreshNotConfigured = "not_configured"
	// refreshUnsealFailed: the stored refresh token or client secret could not be opened with the keyring.
	refreshUnsealFailed = "unseal_failed"
	// refreshStoreFailed: the provider answered with new tokens that could not be stored. The provider
	// may have rotated the refresh token, so the connection may need re-authorisation.
	refreshStoreFailed = "store_failed"
)

// unknownProviderLabel stands for a provider a connection names but TOKEN_PROVIDERS does not, so that
// stored data cannot grow the series.
const unknownProviderLabel = "(unknown)"

// refreshesTotal counts every refresh that took the connection's lease (one per refresh across
// replicas, whatever the number of callers waiting for it), so that an alert sees refresh failures as
// they happen rather than only when a connection ends up needing re-authorisation.
var refreshesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "token_refreshes_total",
	Help: "Token refreshes by provider (configured names; any other is \"(unknown)\") and result: success, a provider failure class (invalid_grant, invalid_client, rate_limited, transient, bad_response), budget_spent, not_configured, unseal_failed or store_failed.",
}, []string{"provider", "result"})

// refreshResults are every value of the result label.
var refreshResults = []string{refreshSuccess,
	string(provider.ClassInvalidGrant), string(provider.ClassInvalidClient), string(provider.ClassRateLimited),
	string(provider.ClassTransient), string(provider.ClassBadResponse),
	refreshBudgetSpent, refreshNotConfigured, refreshUnsealFailed, refreshStoreFailed}

// initRefreshMetrics exports every result of every configured provider at 0: a series that first
// appears at 1 has no earlier sample, so increase() over it is 0 and an alert would miss the first
// failure after a restart.
func initRefreshMetrics(providers map[string]*provider.Client) {
	for name := range providers {
		for _, r := range refreshResults {
			refreshesTotal.WithLabelValues(name, r)
		}
	}
}

// observeRefresh counts one refresh of a connection of provider prov.
func (s *Server) observeRefresh(prov, result string) {
	if _, ok := s.providers[prov]; !ok {
		prov = unknownProviderLabel
	}
	refreshesTotal.WithLabelValues(prov, result).Inc()
}

// refreshFailureResult is the result label of a failed provider call.
func refreshFailureResult(err error) string {
	class, _ := provider.ClassOf(err)
	return string(class)
}

// storedResult is the result label of a provider call that succeeded, by the error of storing its tokens.
func storedResult(err error) string {
	if err != nil {
		return refreshStoreFailed
	}
	return refreshSuccess
}
