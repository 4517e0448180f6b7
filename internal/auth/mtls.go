package auth

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// TLSIdentities map a verified client certificate's identity to scopes: a SPIFFE ID ("spiffe://…", from
// a URI SAN) or a subject common name ("CN=…").
type TLSIdentities map[string][]string

// ParseTLSIdentities reads {"spiffe://trust/ns/x/sa/agent": ["token:read"], "CN=ops": ["audit:read"]}.
func ParseTLSIdentities(raw []byte) (TLSIdentities, error) {
	var m TLSIdentities
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("tls identities: not a JSON object of identity to scopes")
	}
	for id, scopes := range m {
		if !strings.HasPrefix(id, "spiffe://") && !strings.HasPrefix(id, "CN=") {
			return nil, fmt.Errorf("tls identities: %q must start with spiffe:// or CN=", id)
		}
		for _, s := range scopes {
			if !KnownScope(s) {
				return nil, fmt.Errorf("tls identities: %q: unknown scope %q", id, s)
			}
		}
	}
	return m, nil
}

// identities lists the names a certificate can be mapped by, SPIFFE IDs first.
func identities(cert *x509.Certificate) []string {
	var out []string
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			out = append(out, u.String())
		}
	}
	if cert.Subject.CommonName != "" {
		out = append(out, "CN="+cert.Subject.CommonName)
	}
	return out
}

func (m TLSIdentities) principal(cert *x509.Certificate) *Principal {
	for _, id := range identities(cert) {
		if scopes, ok := m[id]; ok {
			return &Principal{ID: "mtls:" + id, Scopes: scopes, Expires: cert.NotAfter}
		}
	}
	return nil
}
