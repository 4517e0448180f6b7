// Package chain computes the audit log's hash chain: each event's hash covers its own fields and the
// previous event's hash, so that changing, inserting or removing any stored event is detectable.
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// Size is the length of a hash.
const Size = sha256.Size

// Genesis is the previous hash of the first event.
var Genesis = make([]byte, Size)

// Fields are the hashed parts of an event, exactly as stored.
type Fields struct {
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
}

// Hash returns SHA-256 over a domain tag, prev and every field, each length-prefixed so that no two
// different events encode alike.
func Hash(prev []byte, f Fields) []byte {
	h := sha256.New()
	h.Write([]byte("sergas.audit.v1\x00"))
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
	return h.Sum(nil)
}

func writeInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}

func writeBytes(h hash.Hash, b []byte) {
	writeInt(h, int64(len(b)))
	h.Write(b)
}
