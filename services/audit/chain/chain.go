// Package chain computes the audit log's hash chain: each event's hash covers its own fields and the
// previous event's hash, so that changing, inserting or removing any stored event is detectable.
//
// The encoding is versioned, and each event stores the version that hashed it. A new version adds fields
// without touching old events: their stored hashes were computed with the old encoding, and rewriting
// them would break the chain (and the append-only guards forbid it). The domain tag names the version,
// so an event cannot be re-labelled with another version and still verify.
//
//   - Version 1 (events written before principals were recorded): tag "sergas.audit.v1\x00", then prev,
//     sequence, id, occur and record time, actor, action, resource, outcome, metadata, idempotency key.
//   - Version 2: tag "sergas.audit.v2\x00", the fields of version 1 in the same order, then the principal
//     that wrote the event.
//   - Version 3 (every event appended since actor types were recorded): tag "sergas.audit.v3\x00", the
//     fields of version 2 in the same order, then the actor type (integer), session id, request id and
//     source service. Empty values are hashed too, so that none can be added to an event later.
//
// Redaction (the event's "redacted" flag) adds no field: the service records it as the reserved key
// "sergas.redacted" inside the metadata text, which versions 2 and 3 hash, so events hashed with
// version 2 before redaction existed still verify and the flag cannot be changed without breaking the
// chain.
//
// Integers are 8-byte big-endian; byte strings are preceded by their length as such an integer, so that
// no two different events encode alike.
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
)

// Size is the length of a hash.
const Size = sha256.Size

// The hash encodings; Current hashes every new event.
const (
	V1      int32 = 1
	V2      int32 = 2
	V3      int32 = 3
	Current       = V3
)

// Genesis is the previous hash of the first event.
var Genesis = make([]byte, Size)

// Fields are the hashed parts of an event, exactly as stored.
type Fields struct {
	Version        int32
	Sequence       int64
	ID             string
	OccurMicros    int64
	RecordMicros   int64
	Actor          string
	Action         string
	Resource       string
	Outcome        int32
	Metadata       string
	IdempotencyKey string
	Principal      string // version 2 on
	ActorType      int32  // version 3 on, and the three below
	SessionID      string
	RequestID      string
	SourceService  string
}

// Hash returns SHA-256 over the version's domain tag, prev and the version's fields, or nil for a
// version it does not know, which therefore never matches a stored hash.
func Hash(prev []byte, f Fields) []byte {
	if !Known(f.Version) {
		return nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "sergas.audit.v%d\x00", f.Version)
	writeBytes(h, prev)
	writeInt(h, f.Sequence)
	writeBytes(h, []byte(f.ID))
	writeInt(h, f.OccurMicros)
	writeInt(h, f.RecordMicros)
	writeBytes(h, []byte(f.Actor))
	writeBytes(h, []byte(f.Action))
	writeBytes(h, []byte(f.Resource))
	writeInt(h, int64(f.Outcome))
	writeBytes(h, []byte(f.Metadata))
	writeBytes(h, []byte(f.IdempotencyKey))
	if f.Version >= V2 {
		writeBytes(h, []byte(f.Principal))
	}
	if f.Version >= V3 {
		writeInt(h, int64(f.ActorType))
		writeBytes(h, []byte(f.SessionID))
		writeBytes(h, []byte(f.RequestID))
		writeBytes(h, []byte(f.SourceService))
	}
	return h.Sum(nil)
}

// Known reports whether v is a hash version this package computes.
func Known(v int32) bool { return v >= V1 && v <= V3 }

func writeInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}

func writeBytes(h hash.Hash, b []byte) {
	writeInt(h, int64(len(b)))
	h.Write(b)
}
