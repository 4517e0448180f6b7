// Package authtest makes credentials for tests: API keys with chosen scopes, their configuration JSON,
// and gRPC dial options that send them.
package authtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sergas/core/internal/auth"
)

// Key is a generated API key and its configuration entry.
type Key struct {
	Key   string
	Entry auth.APIKey
}

// NewKey returns a fresh key with id and scopes.
func NewKey(t testing.TB, id string, scopes ...string) Key {
	t.Helper()
	k, err := auth.NewAPIKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Key: k, Entry: auth.APIKey{ID: id, SHA256: auth.HashAPIKey(k), Scopes: scopes}}
}

// Expired marks the key as expired a minute ago.
func (k Key) Expired() Key {
	at := time.Now().Add(-time.Minute)
	k.Entry.ExpiresAt = &at
	return k
}

// Revoked marks the key as revoked.
func (k Key) Revoked() Key {
	k.Entry.Revoked = true
	return k
}

// JSON returns the {"keys":[…]} document configuring keys.
func JSON(keys ...Key) string {
	doc := struct {
		Keys []auth.APIKey `json:"keys"`
	}{}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, k.Entry)
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// Bearer sends "authorization: Bearer <token>" on every call, even over plaintext (tests only).
func Bearer(token string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(bearer(token))
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
