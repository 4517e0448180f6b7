package webhook

import (
	"encoding/base64"
	"encoding/binary"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/errs"
)

// An ack id names one lease of one delivery: version byte ackIDVersion, the subscription's UUID (16
// bytes), then the delivery id and the lease number as unsigned varints, in unpadded base64url. It is
// opaque to clients and not a secret: acknowledging needs webhook:consume, which may consume every
// subscription anyway. The lease number is what makes a stale ack harmless: the store settles a
// delivery only under its current lease, so an ack from a consumer whose lease expired and passed on
// is refused. The subscription lets ExtendLease apply its lease duration without another lookup.
const ackIDVersion = 1

// maxAckIDLen bounds an ack id before it is decoded: 1+16+10+10 bytes at most, 50 characters.
const maxAckIDLen = 50

// ackRef is what an ack id names.
type ackRef struct {
	subscriptionID string
	deliveryID     int64
	lease          int64
}

func encodeAckID(subscriptionID string, deliveryID, lease int64) string {
	u, err := uuid.Parse(subscriptionID)
	if err != nil {
		// Ids come from the store, which holds canonical UUIDs only.
		panic("ack id for a subscription id that is not a UUID")
	}
	b := make([]byte, 0, 1+16+2*binary.MaxVarintLen64)
	b = append(b, ackIDVersion)
	b = append(b, u[:]...)
	b = binary.AppendUvarint(b, uint64(deliveryID))
	b = binary.AppendUvarint(b, uint64(lease))
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeAckID reads an ack id; anything that is not one this service made is InvalidArgument.
func decodeAckID(s string) (ackRef, error) {
	bad := errs.Invalid("ack_ids holds a value that is not an ack id")
	if s == "" || len(s) > maxAckIDLen {
		return ackRef{}, bad
	}
	// The decoder skips CR and LF even when strict: only the alphabet has one spelling.
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ackRef{}, bad
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 1+16+2 || b[0] != ackIDVersion {
		return ackRef{}, bad
	}
	u, _ := uuid.FromBytes(b[1:17])
	rest := b[17:]
	id, n := binary.Uvarint(rest)
	if n <= 0 {
		return ackRef{}, bad
	}
	lease, m := binary.Uvarint(rest[n:])
	// Exactly two varints, each in its shortest form (so one lease has one ack id), both positive and
	// within int64.
	if m <= 0 || n+m != len(rest) || id == 0 || lease == 0 || id > 1<<63-1 || lease > 1<<63-1 ||
		n != len(binary.AppendUvarint(nil, id)) || m != len(binary.AppendUvarint(nil, lease)) {
		return ackRef{}, bad
	}
	return ackRef{subscriptionID: u.String(), deliveryID: int64(id), lease: int64(lease)}, nil
}
