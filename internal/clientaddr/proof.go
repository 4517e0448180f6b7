package clientaddr

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/sergas/core/internal/config"
)

// A service cannot tell the gateway from any other peer on a trusted network (a pod network, a mesh
// sidecar on loopback), so the gateway proves each report: beside x-sergas-client-ip it sends
// x-sergas-client-ip-proof, "<unix seconds>.<hex HMAC-SHA256(secret, address|seconds)>", keyed with
// CLIENT_ADDR_SECRET, which only the gateway and the services hold. A proof is bound to its address and
// expires after MaxProofAge, so one seen on the wire cannot vouch for another address or be kept.

// ProofKey is the gRPC metadata carrying the gateway's proof of its x-sergas-client-ip report.
const ProofKey = "x-sergas-client-ip-proof"

// SecretVar is the environment variable holding the shared secret.
const SecretVar = "CLIENT_ADDR_SECRET"

// MinSecretBytes is the shortest secret accepted.
const MinSecretBytes = 32

// MaxProofAge is how far a proof's time may be from the verifier's clock, either way (clock skew
// between hosts included).
const MaxProofAge = 3 * time.Minute

// processSecret signs and verifies when CLIENT_ADDR_SECRET is unset. It is random and never leaves the
// process, so a report is then believed only from a gateway in the same process (the all-in-one binary),
// never from another one, whatever network it is on.
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, MinSecretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error since Go 1.24)
	return b
})

// LoadSecret reads CLIENT_ADDR_SECRET (hex, or standard or URL-safe base64, padded or not; at least 32
// bytes). Without it, the key is the process's own random one and configured is false.
func LoadSecret(env *config.Env) (key []byte, configured bool) {
	v, ok := env.Lookup("CLIENT_ADDR_SECRET")
	if !ok {
		return processSecret(), false
	}
	key, ok = decodeSecret(v)
	if !ok {
		// The reason never includes the value.
		env.Fail(SecretVar, "must be at least 32 bytes, hex or base64 encoded (for example `openssl rand -hex 32`)")
		return processSecret(), false
	}
	return key, true
}

func decodeSecret(v string) ([]byte, bool) {
	// Hex first: 64 hex digits are also valid base64, of a different (and longer) key.
	if b, err := hex.DecodeString(v); err == nil {
		return b, len(b) >= MinSecretBytes
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			return b, len(b) >= MinSecretBytes
		}
	}
	return nil, false
}

// Proof is the proof of addr made at t with key.
func Proof(key []byte, addr string, t time.Time) string {
	secs := strconv.FormatInt(t.Unix(), 10)
	return secs + "." + hex.EncodeToString(mac(key, addr, secs))
}

func mac(key []byte, addr, secs string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(addr))
	m.Write([]byte{'|'})
	m.Write([]byte(secs))
	return m.Sum(nil)
}

// verify reports whether proof vouches for addr under key at now.
func verify(key []byte, addr, proof string, now time.Time) bool {
	secs, sum, ok := strings.Cut(proof, ".")
	if !ok || len(key) == 0 {
		return false
	}
	at, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return false
	}
	if age := now.Sub(time.Unix(at, 0)); age > MaxProofAge || age < -MaxProofAge {
		return false
	}
	got, err := hex.DecodeString(sum)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(key, addr, secs))
}

// Outgoing adds addr, with its proof under key, as the client address of the RPCs made with the
// returned context.
func Outgoing(ctx context.Context, addr string, key []byte) context.Context {
	if addr == "" || addr == Unknown {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, MetadataKey, addr, ProofKey, Proof(key, addr, time.Now()))
}

// Warning is what a process should log once at start about t ("" when nothing): set when
// CLIENT_ADDR_SECRET is missing in production.
func (t Trusted) Warning() string { return t.warning }

var warnOnce sync.Once

// LogWarning logs t's warning at most once per process (the all-in-one binary loads the settings for
// several services).
func LogWarning(log *slog.Logger, t Trusted) {
	if t.warning != "" {
		warnOnce.Do(func() { log.Warn(t.warning) })
	}
}

// noSecretWarning is the services' warning without CLIENT_ADDR_SECRET in production.
const noSecretWarning = "CLIENT_ADDR_SECRET is not set: client addresses reported by a gateway in another process are ignored, " +
	"so denials, per-address limits and webhook senders record the gateway's address; set the same CLIENT_ADDR_SECRET on the gateway and the services"

// GatewayWarning is the gateway's warning without CLIENT_ADDR_SECRET in production.
const GatewayWarning = "CLIENT_ADDR_SECRET is not set: services in other processes ignore this gateway's client addresses " +
	"and record the gateway's own; set the same CLIENT_ADDR_SECRET on the gateway and the services"
