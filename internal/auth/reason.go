package auth

// Reason says why a call was denied; it labels the denial counter and the audit event.
type Reason string

// The reasons a call is denied.
const (
	ReasonMissing     Reason = "missing_credentials"
	ReasonMalformed   Reason = "malformed_credentials"
	ReasonInvalid     Reason = "invalid_credentials"
	ReasonExpired     Reason = "expired_credentials"
	ReasonRevoked     Reason = "revoked_credentials"
	ReasonScope       Reason = "insufficient_scope"
	ReasonUnknownRPC  Reason = "no_policy_for_method"
	ReasonRateLimited Reason = "rate_limited"
	// ReasonAddressLimited: the client's address spent its budget of failed calls.
	ReasonAddressLimited Reason = "address_rate_limited"
	ReasonUntrustedTLS   Reason = "unmapped_tls_identity"
)
