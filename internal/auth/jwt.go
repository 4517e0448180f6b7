package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTKeys are verification keys by key id, read from a JWKS document ({"keys":[…]}): "oct" keys for
// HS256, "RSA" public keys for RS256, "EC" P-256 public keys for ES256.
type JWTKeys struct {
	byKID map[string]jwtKey
	algs  []string
}

type jwtKey struct {
	alg string
	key any
}

// ParseJWKS reads a JWKS document.
func ParseJWKS(raw []byte) (*JWTKeys, error) {
	var doc struct {
		Keys []struct {
			Kty, Kid, Alg, Use string
			K, N, E, Crv, X, Y string
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, errors.New("jwt keys: not a JWKS document ({\"keys\":[…]})")
	}
	out := &JWTKeys{byKID: map[string]jwtKey{}}
	for i, k := range doc.Keys {
		var jk jwtKey
		var err error
		switch k.Kty {
		case "oct":
			jk.alg = "HS256"
			var b []byte
			if b, err = b64(k.K); err == nil && len(b) < 32 {
				err = errors.New("HS256 secret must be at least 32 bytes")
			}
			jk.key = b
		case "RSA":
			jk.alg = "RS256"
			var n, e []byte
			if n, err = b64(k.N); err == nil {
				e, err = b64(k.E)
			}
			if err == nil {
				pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
				if pub.N.BitLen() < 2048 {
					err = errors.New("RSA key must be at least 2048 bits")
				}
				jk.key = pub
			}
		case "EC":
			jk.alg = "ES256"
			if k.Crv != "P-256" {
				err = errors.New("EC keys must use curve P-256")
				break
			}
			var x, y []byte
			if x, err = b64(k.X); err == nil {
				y, err = b64(k.Y)
			}
			if err == nil {
				pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
				if !pub.Curve.IsOnCurve(pub.X, pub.Y) {
					err = errors.New("EC point is not on P-256")
				}
				jk.key = pub
			}
		default:
			err = fmt.Errorf("kty %q is not supported (oct, RSA, EC)", k.Kty)
		}
		if err == nil && k.Alg != "" && k.Alg != jk.alg {
			err = fmt.Errorf("alg %q does not match kty %q (want %s)", k.Alg, k.Kty, jk.alg)
		}
		if err != nil {
			return nil, fmt.Errorf("jwt keys: key %d: %w", i+1, err)
		}
		if _, dup := out.byKID[k.Kid]; dup {
			return nil, fmt.Errorf("jwt keys: kid %q appears twice", k.Kid)
		}
		out.byKID[k.Kid] = jk
		if !strings.Contains(strings.Join(out.algs, ","), jk.alg) {
			out.algs = append(out.algs, jk.alg)
		}
	}
	if len(out.byKID) == 0 {
		return nil, errors.New("jwt keys: the document holds no keys")
	}
	return out, nil
}

func b64(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, errors.New("a key field is not base64url")
	}
	return b, nil
}

// JWTVerifier checks signature, issuer, audience and time claims.
type JWTVerifier struct {
	Keys     func() *JWTKeys
	Issuer   string
	Audience string
	Leeway   time.Duration
}

type claims struct {
	jwt.RegisteredClaims
	Scope string   `json:"scope"`
	Scp   []string `json:"scp"`
}

// verify checks a JWT. For an expired token whose signature is good it also returns the principal id it
// names (claimed), so that the refusal is recorded against that caller rather than as anonymous.
func (v *JWTVerifier) verify(token string, now time.Time) (p *Principal, r Reason, claimed string) {
	keys := v.Keys()
	parser := jwt.NewParser(
		jwt.WithValidMethods(keys.algs),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var c claims
	_, err := parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := keys.byKID[kid]
		if !ok || k.alg != t.Method.Alg() {
			return nil, errors.New("unknown key")
		}
		return k.key, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, ReasonMalformed, ""
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, ReasonInvalid, ""
	case errors.Is(err, jwt.ErrTokenExpired) && onlyExpired(err):
		// The signature was verified before the claims were, and expiry is the only claim that failed:
		// the token was issued to this subject, for us. (A token for another audience or issuer that has
		// also expired is no credential of ours; it is refused as invalid.)
		if c.Subject != "" {
			claimed = "jwt:" + c.Issuer + "#" + c.Subject
		}
		return nil, ReasonExpired, claimed
	case err != nil:
		return nil, ReasonInvalid, ""
	case c.Subject == "":
		return nil, ReasonInvalid, ""
	}
	scopes := c.Scp
	if c.Scope != "" {
		scopes = append(scopes, strings.Fields(c.Scope)...)
	}
	return &Principal{ID: "jwt:" + c.Issuer + "#" + c.Subject, Scopes: scopes, Expires: c.ExpiresAt.Time}, "", ""
}

// otherClaimErrors are the claim checks besides expiry that a token can fail.
var otherClaimErrors = []error{jwt.ErrTokenNotValidYet, jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidAudience,
	jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidSubject, jwt.ErrTokenInvalidId, jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrTokenMalformed, jwt.ErrTokenSignatureInvalid, jwt.ErrTokenUnverifiable}

// onlyExpired reports whether expiry is the only failure in err: the library joins every failed claim
// into one error, so that errors.Is(err, ErrTokenExpired) holds for a token that also failed others.
func onlyExpired(err error) bool {
	for _, other := range otherClaimErrors {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}
