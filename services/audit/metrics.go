package audit

// Every result of audit_chain_verifications_total is exported from the start at 0: a series that first
// appears at 1 has no earlier sample, so increase() over it is 0 and an alert on the first broken chain
// after a restart would stay silent.
func init() {
	for p := range chainProblems {
		verificationsTotal.WithLabelValues(verifyResult(p))
	}
}
