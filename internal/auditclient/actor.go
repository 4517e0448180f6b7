package auditclient

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sergas/core/internal/validate"
)

// MaxActorBytes is the longest actor the audit service accepts.
const MaxActorBytes = 256

// Actor makes a principal id fit the audit service's actor (validate.Label): characters a label may
// not hold (control, line-separator and bidirectional-formatting characters) and invalid UTF-8 become
// '?', and an id longer than the limit (a JWT's issuer and subject, a long TLS identity) keeps its start
// and gains a hash of the whole, so that the event is recorded, and still tells principals apart,
// instead of being refused.
func Actor(id string) string {
	id = strings.Map(func(r rune) rune {
		if validate.LabelUnsafe(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(id, "?"))
	if len(id) <= MaxActorBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	suffix := "…sha256:" + hex.EncodeToString(sum[:8])
	cut := MaxActorBytes - len(suffix)
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + suffix
}
