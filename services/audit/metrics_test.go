package audit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every verification result is exported before any verification, so that an alert's increase() sees a
// broken chain's first count (deploy/prometheus/alerts.yaml, SergasAuditChainVerificationFailed).
func TestVerificationResultsAreExportedAtZero(t *testing.T) {
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		if f.GetName() != "audit_chain_verifications_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					got[l.GetValue()] = true
				}
			}
		}
	}
	for _, want := range []string{"valid", "changed", "missing", "inserted", "out_of_order", "checkpoint_mismatch"} {
		if !got[want] {
			t.Errorf("audit_chain_verifications_total{result=%q} is not exported before a verification (have %v)", want, got)
		}
	}
}
