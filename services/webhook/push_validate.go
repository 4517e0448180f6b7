package webhook

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/safedial"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// Push subscription limits and defaults (webhook.proto's PushConfig).
const (
	defaultPushTimeout       = 10 * time.Second
	minPushTimeout           = time.Second
	maxPushTimeout           = time.Minute
	maxEndpointBytes         = 2048
	defaultPreviousSecretTTL = 24 * time.Hour
	maxPreviousSecretTTL     = 30 * 24 * time.Hour
)

// pushSecretAAD binds a sealed signing secret to its subscription, so that a sealed value copied to
// another subscription's row does not open (both the current and the previous secret use it).
func pushSecretAAD(id string) []byte {
	return []byte("push-subscription\x00" + id + "\x00signing-secret")
}

// errNoPushKeys is why push subscriptions cannot be created or rotated without a keyring.
func errNoPushKeys() error {
	return errs.New(errs.KindFailedPrecondition, "push subscriptions need WEBHOOK_ENCRYPTION_KEYS, which seals their signing secrets; set it on the webhook service")
}

// subscriptionMode checks the request's mode and push configuration against each other: push needs
// one, pull (the default) refuses one.
func subscriptionMode(req *webhookv1.CreateSubscriptionRequest) (store.SubscriptionMode, error) {
	switch req.GetMode() {
	case webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_UNSPECIFIED, webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PULL:
		if req.GetPush() != nil {
			return 0, errs.Invalid("push must not be set for a pull subscription (set mode to SUBSCRIPTION_MODE_PUSH)")
		}
		return store.SubscriptionPull, nil
	case webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH:
		if req.GetPush() == nil {
			return 0, errs.Invalid("push is required for a push subscription (endpoint and signing_secret)")
		}
		return store.SubscriptionPush, nil
	}
	return 0, errs.Invalid("mode is not a known value")
}

// newPushConfig checks a push configuration for subscription id (whose lease is lease) and returns it
// with its signing secret sealed.
func (s *Server) newPushConfig(id string, p *webhookv1.PushConfig, lease time.Duration) (*store.PushConfig, error) {
	if s.ring == nil {
		return nil, errNoPushKeys()
	}
	endpoint, err := checkEndpoint(p.GetEndpoint(), p.GetAllowPrivateNetwork())
	if err != nil {
		return nil, err
	}
	timeout, err := durationIn("push.timeout", p.GetTimeout(), defaultPushTimeout, minPushTimeout, maxPushTimeout)
	if err != nil {
		return nil, err
	}
	if timeout >= lease {
		return nil, errs.Invalid("push.timeout (%s) must be shorter than lease_duration (%s): a lease must outlast its request", timeout, lease)
	}
	if p.GetPreviousSecretExpireTime() != nil {
		return nil, errs.Invalid("push.previous_secret_expire_time is output only")
	}
	sealed, err := s.sealSigningSecret(id, "push.signing_secret", p.GetSigningSecret())
	if err != nil {
		return nil, err
	}
	return &store.PushConfig{Endpoint: endpoint, AllowPrivateNetwork: p.GetAllowPrivateNetwork(), Timeout: timeout, Secret: sealed}, nil
}

// sealSigningSecret checks a "whsec_" secret and seals it for subscription id. The secret is never part
// of an error.
func (s *Server) sealSigningSecret(id, field, secret string) ([]byte, error) {
	if secret == "" {
		return nil, errs.Invalid("%s is required: whsec_ followed by the base64 of 24 to 64 random bytes", field)
	}
	if _, err := parseStandardSecret(secret); err != nil {
		return nil, errs.Invalid("%s: %s", field, strings.TrimPrefix(err.Error(), "standard-webhooks "))
	}
	if s.ring == nil {
		return nil, errNoPushKeys()
	}
	sealed, err := s.ring.Seal([]byte(secret), pushSecretAAD(id))
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "the signing secret could not be sealed")
	}
	return sealed, nil
}

// checkEndpoint accepts an absolute https URL (http only when private networks are allowed: an endpoint
// inside the cluster or behind a sidecar that encrypts) of at most maxEndpointBytes, without user
// information (credentials would be stored and shown in clear) or fragment. A host that is an IP
// literal or "localhost" of a non-public class is refused here already unless private networks are
// allowed; names are checked at each connection, after resolution.
func checkEndpoint(v string, allowPrivate bool) (string, error) {
	const what = "push.endpoint must be an absolute https URL (http only with allow_private_network)"
	if v == "" {
		return "", errs.Invalid("push.endpoint is required")
	}
	if len(v) > maxEndpointBytes {
		return "", errs.Invalid("push.endpoint must be at most %d bytes", maxEndpointBytes)
	}
	if err := validate.Text("push.endpoint", v, maxEndpointBytes, false); err != nil {
		return "", err
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", errs.Invalid("push.endpoint must not contain spaces or control characters")
	}
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return "", errs.Invalid(what)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPrivate {
			return "", errs.Invalid("push.endpoint must use https; http is accepted only with allow_private_network")
		}
	default:
		return "", errs.Invalid(what)
	}
	if u.User != nil {
		return "", errs.Invalid("push.endpoint must not carry user information: credentials in a URL are stored and shown in clear")
	}
	if u.Fragment != "" || strings.Contains(v, "#") {
		return "", errs.Invalid("push.endpoint must not carry a fragment")
	}
	if port := u.Port(); port != "" {
		if _, err := net.LookupPort("tcp", port); err != nil || port == "0" {
			return "", errs.Invalid("push.endpoint has an invalid port")
		}
	}
	if numericHost(u.Hostname()) {
		return "", errs.Invalid("push.endpoint's host ends in a number but is not an IP address in dotted-decimal form (a.b.c.d); write the address that way, or use a name")
	}
	if !allowPrivate {
		if c := literalClass(u.Hostname()); c != "" {
			return "", errs.Invalid("push.endpoint names a %s address, which only a subscription with allow_private_network may reach", c)
		}
	}
	return v, nil
}

// literalClass is the non-public class of host when it is an IP literal or localhost, "" otherwise. A
// trailing dot (the root of a fully qualified name) is ignored: "localhost." and "169.254.169.254." name
// what "localhost" and "169.254.169.254" do.
func literalClass(host string) string {
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return safedial.ClassLoopback
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	return safedial.Classify(a)
}

// pushProto renders a push configuration: never a secret, sealed or not.
func pushProto(p *store.PushConfig) *webhookv1.PushConfig {
	if p == nil {
		return nil
	}
	out := &webhookv1.PushConfig{Endpoint: shownEndpoint(p.Endpoint), AllowPrivateNetwork: p.AllowPrivateNetwork, Timeout: durationpb.New(p.Timeout)}
	if !p.PreviousSecretExpireTime.IsZero() {
		out.PreviousSecretExpireTime = timestamppb.New(p.PreviousSecretExpireTime)
	}
	return out
}

// shownEndpoint is the endpoint as answers show it: its query, where many receivers take a token
// (?key=…), is replaced by "REDACTED", so that readers of subscriptions (webhook:read) do not learn a
// credential. The endpoint is stored and called whole.
func shownEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.RawQuery == "" && !u.ForceQuery) {
		return endpoint
	}
	u.RawQuery, u.ForceQuery = "REDACTED", false
	return u.String()
}

// numericHost reports whether host ends in a numeric label ("127.1", "0x7f000001", "2130706433",
// "0177.0.0.1") without being a dotted-decimal IPv4 address. No DNS name ends in a number, and resolvers
// differ on these forms: the C library's reads them as IPv4 addresses (127.1 is 127.0.0.1), Go's asks DNS.
// Such a host is refused rather than judged: the dialer would still refuse a non-public address it
// connects to, but the endpoint would pass the creation check as a name.
func numericHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if strings.Contains(host, ":") { // an IPv6 literal
		return false
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	numeric := strings.Trim(last, "0123456789") == ""
	if l := strings.ToLower(last); strings.HasPrefix(l, "0x") {
		numeric = strings.Trim(l[2:], "0123456789abcdef") == ""
	}
	if !numeric {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err != nil || !a.Is4()
}
