package gateway

import (
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/sergas/core/internal/clientaddr"
)

// proofCache keeps the latest client-address proof of a few addresses. A proof (clientaddr.Proof) is an
// HMAC of the address and the current second, the same for every request from that address within the
// second; computing it was about 3% of the gateway's CPU per webhook delivery. A cached proof is
// exactly the one clientaddr.Proof returns for that address at that second, so the services see nothing
// new. Slots are overwritten by whichever address hashes there last, so the cache holds at most
// proofSlots proofs however many senders there are.
type proofCache struct {
	seed  maphash.Seed
	slots [proofSlots]atomic.Pointer[cachedProof]
}

const proofSlots = 256

type cachedProof struct {
	addr  string
	secs  int64
	proof string
}

func newProofCache() *proofCache { return &proofCache{seed: maphash.MakeSeed()} }

// proof returns clientaddr.Proof(key, addr, now), from the cache when addr's last proof is of now's second.
func (c *proofCache) proof(key []byte, addr string, now time.Time) string {
	secs := now.Unix()
	slot := &c.slots[maphash.String(c.seed, addr)%proofSlots]
	if p := slot.Load(); p != nil && p.secs == secs && p.addr == addr {
		return p.proof
	}
	proof := clientaddr.Proof(key, addr, now)
	slot.Store(&cachedProof{addr: addr, secs: secs, proof: proof})
	return proof
}
