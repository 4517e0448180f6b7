package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/grpcserver"
)

// testConfig is the service's configuration for a test on d: a fresh database, a signing key written
// to a file, no schedule and no retention unless the test sets them.
func signedConfig(t *testing.T, d db.Dialect) Config {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0", "AUDIT_SIGNING_KEY": writeKeyFile(t, priv),
		"AUDIT_CHECKPOINT_INTERVAL": "0", "AUDIT_RETENTION_DAYS": "0"}))
	cfg.DB = dbtest.Config(t, d)
	cfg.GRPC = grpcserver.Config{Addr: cfg.GRPC.Addr, MaxRecvBytes: 1 << 20, MaxSendBytes: 4 << 20, MaxConcurrentStreams: 100, ShutdownTimeout: 10 * time.Second}
	return cfg
}

// signedService is an audit service running through the platform's Serve for one test.
type signedService struct {
	svc  *Service
	addr string
	stop func() error
}

// serve opens the service with cfg (prepare may change it before it serves) and serves it with API-key
// authentication (keys) until the test ends or stop is called.
func serveSigned(t *testing.T, cfg Config, keys []authtest.Key, prepare func(*Service)) *signedService {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(svc)
	}
	sec, err := auth.LoadConfig(config.FromMap(map[string]string{"AUTH_API_KEYS": authtest.JSON(keys...)}), false).Build(log)
	if err != nil {
		t.Fatal(err)
	}
	unlimited := auth.Rate{PerSecond: 1e9, Burst: 1e9}
	sec.Limits = auth.NewLimiters(auth.Limits{Read: unlimited, Write: unlimited, Admin: unlimited, Failures: unlimited})
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, cfg.ServiceConfig, &app.Runtime{Security: sec}, log, svc, func(a string) { addrc <- a })
	}()
	s := &signedService{svc: svc}
	select {
	case s.addr = <-addrc:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	var stopped bool
	var serveErr error
	s.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			serveErr = <-done
		}
		return serveErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// client returns a client that sends key (none when key is empty).
func (s *signedService) client(t *testing.T, key string) auditv1.AuditServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if key != "" {
		opts = append(opts, authtest.Bearer(key))
	}
	conn, err := grpc.NewClient(s.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return auditv1.NewAuditServiceClient(conn)
}

func wantCodeIs(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: %v, want %v", what, err, code)
	}
}

// verifyWith checks c's signature with a key signedService by GetSigningKey, read from its PEM form as a third
// party would, and that the signed text holds the checkpoint's fields.
func verifyWith(t *testing.T, key *auditv1.GetSigningKeyResponse, c *auditv1.Checkpoint) {
	t.Helper()
	block, _ := pem.Decode([]byte(key.GetPublicKeyPem()))
	if block == nil {
		t.Fatal("no PEM public key")
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	pub, ok := parsed.(ed25519.PublicKey)
	if err != nil || !ok || !bytes.Equal(pub, key.GetPublicKey()) || KeyID(pub) != key.GetKeyId() {
		t.Fatalf("signedService key: %v", err)
	}
	if c.GetKeyId() != key.GetKeyId() || !ed25519.Verify(pub, []byte(c.GetSignedText()), c.GetSignature()) {
		t.Fatalf("checkpoint %d does not verify with key %s", c.GetId(), key.GetKeyId())
	}
	back, err := ParseSignedText(c.GetSignedText())
	if err != nil || back.Sequence != c.GetSequence() || !bytes.Equal(back.Hash, c.GetHash()) || back.AnchorSeq != c.GetAnchorSequence() ||
		!bytes.Equal(back.AnchorHash, c.GetAnchorHash()) || !back.Time.Equal(c.GetTime().AsTime()) || back.Kind != int32(c.GetKind()) {
		t.Fatalf("signed text does not hold the checkpoint's fields: %v", err)
	}
}

// TestCheckpointRPCs: over real gRPC with API keys on both backends, CreateCheckpoint needs audit:admin
// and signs the head anew on every call; GetCheckpoint and ListCheckpoints need audit:read and page
// newest first; GetSigningKey needs no credential and serves the key the checkpoints verify with. After
// a key rotation (a restart with another key) the old key is still signedService by id, not as current, and
// the old checkpoints still verify with it.
func TestCheckpointRPCs(t *testing.T) {
	admin := authtest.NewKey(t, "admin", auth.ScopeAuditAdmin)
	reader := authtest.NewKey(t, "reader", auth.ScopeAuditRead)
	writer := authtest.NewKey(t, "writer", auth.ScopeAuditWrite)
	keys := []authtest.Key{admin, reader, writer}
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := signedConfig(t, d)
			s := serveSigned(t, cfg, keys, nil)
			asAdmin, asReader, asWriter, anon := s.client(t, admin.Key), s.client(t, reader.Key), s.client(t, writer.Key), s.client(t, "")
			var last *auditv1.Event
			for range 3 {
				resp, err := asWriter.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "agent-1", Action: "a.b", Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
				if err != nil {
					t.Fatal(err)
				}
				last = resp.GetEvent()
			}
			_, err := asReader.CreateCheckpoint(ctx, &auditv1.CreateCheckpointRequest{})
			wantCodeIs(t, "CreateCheckpoint with audit:read", err, codes.PermissionDenied)
			_, err = anon.CreateCheckpoint(ctx, &auditv1.CreateCheckpointRequest{})
			wantCodeIs(t, "CreateCheckpoint without a credential", err, codes.Unauthenticated)
			first, err := asAdmin.CreateCheckpoint(ctx, &auditv1.CreateCheckpointRequest{})
			if err != nil {
				t.Fatal(err)
			}
			c := first.GetCheckpoint()
			if c.GetSequence() != 3 || !bytes.Equal(c.GetHash(), last.GetHash()) || c.GetKind() != auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND ||
				c.GetAnchorSequence() != 0 || len(c.GetAnchorHash()) != 32 || len(c.GetSignature()) != ed25519.SignatureSize {
				t.Fatalf("checkpoint: %v", c)
			}
			key, err := anon.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{})
			if err != nil || !key.GetCurrent() {
				t.Fatalf("GetSigningKey without a credential: %v %v", key, err)
			}
			verifyWith(t, key, c)
			second, err := asAdmin.CreateCheckpoint(ctx, &auditv1.CreateCheckpointRequest{})
			if err != nil || second.GetCheckpoint().GetId() <= c.GetId() || second.GetCheckpoint().GetSequence() != 3 {
				t.Fatalf("second CreateCheckpoint on an unmoved head: %v %v", second, err)
			}

			got, err := asReader.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{Id: c.GetId()})
			if err != nil || !bytes.Equal(got.GetCheckpoint().GetSignature(), c.GetSignature()) || got.GetCheckpoint().GetSignedText() != c.GetSignedText() {
				t.Fatalf("GetCheckpoint: %v %v", got, err)
			}
			_, err = asWriter.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{Id: c.GetId()})
			wantCodeIs(t, "GetCheckpoint with audit:write", err, codes.PermissionDenied)
			_, err = asReader.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{Id: 9999})
			wantCodeIs(t, "GetCheckpoint of a missing id", err, codes.NotFound)
			_, err = asReader.GetCheckpoint(ctx, &auditv1.GetCheckpointRequest{})
			wantCodeIs(t, "GetCheckpoint without an id", err, codes.InvalidArgument)

			var ids []int64
			token := ""
			for range 5 { // bounded: two checkpoints, one per page
				page, err := asReader.ListCheckpoints(ctx, &auditv1.ListCheckpointsRequest{PageSize: 1, PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				for _, pc := range page.GetCheckpoints() {
					ids = append(ids, pc.GetId())
				}
				if token = page.GetNextPageToken(); token == "" {
					break
				}
			}
			if len(ids) != 2 || ids[0] != second.GetCheckpoint().GetId() || ids[1] != c.GetId() {
				t.Fatalf("ListCheckpoints pages: %v", ids)
			}
			_, err = asReader.ListCheckpoints(ctx, &auditv1.ListCheckpointsRequest{PageToken: "garbage"})
			wantCodeIs(t, "ListCheckpoints with a bad token", err, codes.InvalidArgument)
			_, err = anon.ListCheckpoints(ctx, &auditv1.ListCheckpointsRequest{})
			wantCodeIs(t, "ListCheckpoints without a credential", err, codes.Unauthenticated)

			_, err = anon.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: "0123456789abcdef"})
			wantCodeIs(t, "GetSigningKey of an unknown key", err, codes.NotFound)
			_, err = anon.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: "a\x00b"})
			wantCodeIs(t, "GetSigningKey with NUL", err, codes.InvalidArgument)

			// Rotation: the same database, another key.
			if err := s.stop(); err != nil {
				t.Fatal(err)
			}
			rotated := signedConfig(t, d)
			rotated.DB = cfg.DB
			s2 := serveSigned(t, rotated, keys, nil)
			anon2, admin2 := s2.client(t, ""), s2.client(t, admin.Key)
			cur, err := anon2.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{})
			if err != nil || cur.GetKeyId() == key.GetKeyId() || !cur.GetCurrent() {
				t.Fatalf("current key after rotation: %v %v", cur, err)
			}
			old, err := anon2.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: key.GetKeyId()})
			if err != nil || old.GetCurrent() || !bytes.Equal(old.GetPublicKey(), key.GetPublicKey()) {
				t.Fatalf("rotated-away key: %v %v", old, err)
			}
			verifyWith(t, old, c)
			third, err := admin2.CreateCheckpoint(ctx, &auditv1.CreateCheckpointRequest{})
			if err != nil {
				t.Fatal(err)
			}
			verifyWith(t, cur, third.GetCheckpoint())
			byID, err := anon2.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: cur.GetKeyId()})
			if err != nil || !byID.GetCurrent() {
				t.Fatalf("current key by id: %v %v", byID, err)
			}
		})
	}
}

// TestCheckpointsWithoutAKey: a service opened without any signing key (a Config built by hand) refuses
// checkpoint requests with FAILED_PRECONDITION, never INTERNAL or a silent success.
func TestCheckpointsWithoutAKey(t *testing.T) {
	admin := authtest.NewKey(t, "admin", auth.ScopeAuditAdmin, auth.ScopeAuditRead)
	cfg := signedConfig(t, db.SQLite)
	cfg.Signing = Signing{}
	s := serveSigned(t, cfg, []authtest.Key{admin}, nil)
	c := s.client(t, admin.Key)
	_, err := c.CreateCheckpoint(context.Background(), &auditv1.CreateCheckpointRequest{})
	wantCodeIs(t, "CreateCheckpoint", err, codes.FailedPrecondition)
	_, err = c.GetSigningKey(context.Background(), &auditv1.GetSigningKeyRequest{})
	wantCodeIs(t, "GetSigningKey", err, codes.FailedPrecondition)
}

// TestCheckpointsOverREST: through the real gateway, the signing key is served without a credential,
// POST /v1/audit/checkpoints needs audit:admin, and the checkpoint it made is read back by id and in
// the list; its signature verifies with the served PEM key.
func TestCheckpointsOverREST(t *testing.T) {
	admin := authtest.NewKey(t, "admin", auth.ScopeAuditAdmin)
	reader := authtest.NewKey(t, "reader", auth.ScopeAuditRead)
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			s := serveSigned(t, signedConfig(t, d), []authtest.Key{admin, reader}, nil)
			base := serveGateway(t, s.addr)
			call := func(method, path, key string, into proto.Message) int {
				t.Helper()
				req, err := http.NewRequest(method, base+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode == http.StatusOK && into != nil {
					if err := protojson.Unmarshal(body, into); err != nil {
						t.Fatalf("%s %s: %v\n%s", method, path, err, body)
					}
				}
				return resp.StatusCode
			}
			var key auditv1.GetSigningKeyResponse
			if code := call(http.MethodGet, "/v1/audit/signing-key", "", &key); code != http.StatusOK || !key.GetCurrent() {
				t.Fatalf("GET signing-key: %d %v", code, &key)
			}
			if code := call(http.MethodPost, "/v1/audit/checkpoints", reader.Key, nil); code != http.StatusForbidden {
				t.Fatalf("POST checkpoints with audit:read: %d", code)
			}
			var resp auditv1.CreateCheckpointResponse
			if code := call(http.MethodPost, "/v1/audit/checkpoints", admin.Key, &resp); code != http.StatusOK {
				t.Fatalf("POST checkpoints: %d", code)
			}
			created := resp.GetCheckpoint()
			verifyWith(t, &key, created)
			var got auditv1.GetCheckpointResponse
			if code := call(http.MethodGet, "/v1/audit/checkpoints/"+strconv.FormatInt(created.GetId(), 10), reader.Key, &got); code != http.StatusOK ||
				got.GetCheckpoint().GetSignedText() != created.GetSignedText() {
				t.Fatalf("GET checkpoint: %d %v", code, &got)
			}
			var list auditv1.ListCheckpointsResponse
			if code := call(http.MethodGet, "/v1/audit/checkpoints?page_size=10", reader.Key, &list); code != http.StatusOK ||
				len(list.GetCheckpoints()) != 1 || list.GetCheckpoints()[0].GetId() != created.GetId() {
				t.Fatalf("GET checkpoints: %d %v", code, &list)
			}
			if code := call(http.MethodGet, "/v1/audit/checkpoints/999", reader.Key, nil); code != http.StatusNotFound {
				t.Fatalf("GET a missing checkpoint: %d", code)
			}
		})
	}
}

// TestGetSigningKeyBoundsAnonymousLookups: GetSigningKey needs no credential, so the ids it looks up in
// the database are bounded: a malformed id is refused before any lookup, made-up ids beyond a small
// budget get RESOURCE_EXHAUSTED, and a key found once is served from memory whatever the budget.
func TestGetSigningKeyBoundsAnonymousLookups(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, db.SQLite)
	old := newTestKey(t)
	if _, err := newCheckpointer(st, old, 0, slog.New(slog.NewTextHandler(io.Discard, nil))).Sign(ctx, auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND); err != nil {
		t.Fatal(err)
	}
	s := NewServer(st, DefaultLimits)
	s.checkpoints = newCheckpointer(st, newTestKey(t), 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got, err := s.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: old.keyID}); err != nil || got.GetCurrent() || !bytes.Equal(got.GetPublicKey(), old.pub) {
		t.Fatalf("rotated-away key: %v %v", got, err)
	}
	for _, bad := range []string{"ABCDEF0123456789", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg"} {
		_, err := s.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: bad})
		wantInvalid(t, bad, err)
	}
	exhausted := false
	for i := range keyLookupsBurst * 3 {
		_, err := s.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: fmt.Sprintf("%016x", i)})
		if status.Code(err) == codes.ResourceExhausted {
			exhausted = true
			break
		}
		if !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("made-up id %d: %v", i, err)
		}
	}
	if !exhausted {
		t.Fatalf("%d made-up ids were all looked up", keyLookupsBurst*3)
	}
	if got, err := s.GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{KeyId: old.keyID}); err != nil || !bytes.Equal(got.GetPublicKey(), old.pub) {
		t.Fatalf("known key once the budget is spent: %v %v", got, err)
	}
}
