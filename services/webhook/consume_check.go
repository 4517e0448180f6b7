package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// Pull consumption limits, as the protobuf documents them.
const (
	defaultMaxInFlight = 10
	maxInFlightLimit   = 1000
	maxAckIDs          = 1000
	maxPollWait        = 30 * time.Second
	maxNackDelay       = 24 * time.Hour
	maxNackError       = 1000
	maxConsumerName    = 128
	minExtendLease     = time.Second
	maxExtendLease     = 12 * time.Hour
)

// consumerName checks a consumer's name (1-128 printable ASCII characters, so that it shows as written
// in attempt histories and logs) and makes a random one when it is empty.
func consumerName(v string) (string, error) {
	if v == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return "consumer-" + hex.EncodeToString(b[:]), nil
	}
	if len(v) > maxConsumerName {
		return "", errs.Invalid("consumer must be at most %d characters", maxConsumerName)
	}
	if strings.HasPrefix(v, store.PushConsumerPrefix) {
		return "", errs.Invalid("consumer must not start with %q: it names the push workers", store.PushConsumerPrefix)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return "", errs.Invalid("consumer must be printable ASCII characters")
		}
	}
	return v, nil
}

// countIn checks a count field: def when zero, otherwise within [1, hi].
func countIn(field string, v int32, def, hi int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0 || int(v) > hi:
		return 0, errs.Invalid("%s must be between 1 and %d", field, hi)
	}
	return int(v), nil
}

// optionalDuration checks a duration field: set reports whether it was given; a given one must be valid
// and within [lo, hi].
func optionalDuration(field string, d *durationpb.Duration, lo, hi time.Duration) (v time.Duration, set bool, err error) {
	if d == nil {
		return 0, false, nil
	}
	if d.CheckValid() != nil {
		return 0, false, errs.Invalid("%s is not a valid duration", field)
	}
	v = d.AsDuration()
	if v < lo || v > hi {
		return 0, false, errs.Invalid("%s must be between %v and %v", field, lo, hi)
	}
	return v, true, nil
}

// ackRefs decodes a request's ack ids (1 to maxAckIDs of them, each an ack id this service made),
// without repeats: an id named twice is settled once, not refused the second time.
func ackRefs(ids []string) ([]string, []ackRef, error) {
	if len(ids) == 0 || len(ids) > maxAckIDs {
		return nil, nil, errs.Invalid("ack_ids must hold 1 to %d ack ids", maxAckIDs)
	}
	seen := make(map[string]bool, len(ids))
	uniq := make([]string, 0, len(ids))
	refs := make([]ackRef, 0, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		ref, err := decodeAckID(id)
		if err != nil {
			return nil, nil, err
		}
		uniq = append(uniq, id)
		refs = append(refs, ref)
	}
	return uniq, refs, nil
}
