package audit

import (
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/services/audit/store"
)

// pageSizer keeps a response's events under maxPageBytes without measuring every event: measuring a
// Struct (proto.Size walks its maps) cost about a seventh of a ListEvents page's server time, and it is
// measured again when the answer is encoded. Each event is first counted by sizeBound, which is never
// less than its encoded size; only once those bounds add up past the limit does the sizer measure,
// the events kept so far and every event after, exactly.
type pageSizer struct {
	total int
	exact bool
}

// fits counts pe (made from e) and reports whether the page still fits with it. kept are the events
// already in the page.
func (z *pageSizer) fits(e *store.Event, pe *auditv1.Event, kept []*auditv1.Event) bool {
	if !z.exact {
		if z.total += sizeBound(e); z.total <= maxPageBytes {
			return true
		}
		z.exact, z.total = true, 0
		for _, k := range kept {
			z.total += proto.Size(k)
		}
	}
	z.total += proto.Size(pe)
	return z.total <= maxPageBytes
}

// sizeBound is at least the encoded size of toProto(e) (TestSizeBoundIsAnUpperBound). Text fields grow
// at most threefold (each invalid byte becomes U+FFFD) plus a tag and a length; metadata at most
// eightfold: a one-digit number in a JSON array, two bytes with its comma, becomes an 11-byte Value in
// a ListValue, and an unreadable document is one string of its text, grown at most threefold. The fixed
// part covers the tags, lengths, varints, enums and the two timestamps.
func sizeBound(e *store.Event) int {
	text := len(e.ID) + len(e.Actor) + len(e.Action) + len(e.Resource) + len(e.IdempotencyKey) +
		len(e.Principal) + len(e.SessionID) + len(e.RequestID) + len(e.SourceService)
	return 3*text + 8*len(e.Metadata) + len(e.PreviousHash) + len(e.Hash) + 256
}
