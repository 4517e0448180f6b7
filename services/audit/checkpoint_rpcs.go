package audit

import (
	"context"
	"crypto/ed25519"
	"sync"

	"golang.org/x/time/rate"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/services/audit/store"
)

// keyLookups bounds how often GetSigningKey, which needs no credential, reaches the database for a key
// it has not served before (a key rotated away; anything else is refused by its form or not found):
// every process serves a few keys, and an anonymous flood of made-up ids must not become database load.
const (
	keyLookupsPerSecond = 20
	keyLookupsBurst     = 40
)

// knownKeys remembers the public keys GetSigningKey found in the store: a key id names one key forever.
type knownKeys struct {
	mu      sync.Mutex
	keys    map[string][]byte
	lookups *rate.Limiter
}

func newKnownKeys() *knownKeys {
	return &knownKeys{keys: map[string][]byte{}, lookups: rate.NewLimiter(keyLookupsPerSecond, keyLookupsBurst)}
}

// get returns the public key of id, from memory or (within the lookup budget) from the store.
func (k *knownKeys) get(ctx context.Context, st store.Store, id string) ([]byte, error) {
	k.mu.Lock()
	pub, ok := k.keys[id]
	k.mu.Unlock()
	if ok {
		return pub, nil
	}
	if r := k.lookups.Reserve(); r.Delay() > 0 {
		wait := r.Delay()
		r.Cancel()
		return nil, ratelimit.Exceeded("signing key lookup", wait)
	}
	pub, err := st.SigningKeyGet(ctx, id)
	if err != nil {
		return nil, err
	}
	// A key stored under an id that is not its own (a row changed in the database) is not served as that
	// id's key: verifiers fetch keys by the id a checkpoint names.
	if len(pub) != ed25519.PublicKeySize || KeyID(ed25519.PublicKey(pub)) != id {
		return nil, errs.NotFound("no signing key with id %q", id)
	}
	k.mu.Lock()
	k.keys[id] = pub // bounded: only ids of stored checkpoints get here
	k.mu.Unlock()
	return pub, nil
}

// validKeyID reports whether id has the form KeyID gives: 16 lower-case hex digits.
func validKeyID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CreateCheckpoint implements auditv1.AuditServiceServer: a new checkpoint every call, whether or not
// the head moved.
func (s *Server) CreateCheckpoint(ctx context.Context, _ *auditv1.CreateCheckpointRequest) (*auditv1.CreateCheckpointResponse, error) {
	if s.checkpoints == nil {
		return nil, errNoSigningKey
	}
	ctx, cancel := context.WithTimeout(ctx, signTimeout)
	defer cancel()
	c, err := s.checkpoints.Sign(ctx, auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND)
	if err != nil {
		return nil, err
	}
	return &auditv1.CreateCheckpointResponse{Checkpoint: checkpointToProto(c)}, nil
}

// GetCheckpoint implements auditv1.AuditServiceServer.
func (s *Server) GetCheckpoint(ctx context.Context, req *auditv1.GetCheckpointRequest) (*auditv1.GetCheckpointResponse, error) {
	if req.GetId() <= 0 {
		return nil, errs.Invalid("id must be a checkpoint number (from 1)")
	}
	c, err := s.store.CheckpointGet(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &auditv1.GetCheckpointResponse{Checkpoint: checkpointToProto(c)}, nil
}

// ListCheckpoints implements auditv1.AuditServiceServer: newest first, paged by id (ids commit in
// order, see store.CheckpointTx, so a page never skips one committed later with a smaller id).
func (s *Server) ListCheckpoints(ctx context.Context, req *auditv1.ListCheckpointsRequest) (*auditv1.ListCheckpointsResponse, error) {
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	before, _, err := pagetoken.DecodeInt(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	cs, err := s.store.CheckpointList(ctx, store.CheckpointListParams{BeforeID: before, Limit: size + 1})
	if err != nil {
		return nil, err
	}
	resp := &auditv1.ListCheckpointsResponse{}
	cs, resp.NextPageToken = pagetoken.Page(cs, size, func(c *store.Checkpoint) string { return pagetoken.EncodeInt(c.ID) })
	for _, c := range cs {
		resp.Checkpoints = append(resp.Checkpoints, checkpointToProto(c))
	}
	return resp, nil
}

// GetSigningKey implements auditv1.AuditServiceServer. It needs no credential: it returns public keys
// only, the current one or one that signed a stored checkpoint (keys rotated away included).
func (s *Server) GetSigningKey(ctx context.Context, req *auditv1.GetSigningKeyRequest) (*auditv1.GetSigningKeyResponse, error) {
	id := req.GetKeyId()
	if id != "" && !validKeyID(id) {
		return nil, errs.Invalid("key_id must be 16 lower-case hex digits, as checkpoints name keys")
	}
	var cur *signingKey
	if s.checkpoints != nil {
		cur = s.checkpoints.key
	}
	switch {
	case id == "" && cur == nil:
		return nil, errNoSigningKey
	case id == "" || (cur != nil && id == cur.keyID):
		return signingKeyResponse(cur.keyID, cur.pub, true), nil
	}
	pub, err := s.keys.get(ctx, s.store, id)
	if err != nil {
		return nil, err
	}
	return signingKeyResponse(id, pub, false), nil
}

func signingKeyResponse(id string, pub []byte, current bool) *auditv1.GetSigningKeyResponse {
	return &auditv1.GetSigningKeyResponse{KeyId: id, PublicKey: pub, PublicKeyPem: PublicKeyPEM(pub), Current: current}
}
