package store

// Page cuts events, listed with Limit size+1 after the cursor after, to one page, and says where the next
// page starts. Only a settled event's cursor is handed on, so that no event that commits later can fall
// behind it (see Cursor):
//   - the last page (no more than size events) is returned whole, settled or not, and has no next page:
//     nothing is handed on, so a late commit cannot be skipped, and a list shows what was just committed;
//   - a full page ends before its first unsettled event; next is the cursor of its last settled event,
//     or after itself when there is none (the page is then empty: try again once older transactions end).
func Page(events []*Event, size int, after Cursor) (page []*Event, next Cursor, more bool) {
	if len(events) <= size {
		return events, Cursor{}, false
	}
	events = events[:size]
	n := 0
	for n < len(events) && events[n].Settled {
		n++
	}
	if n == 0 {
		return events[:0], after, true
	}
	return events[:n], events[n-1].Cursor(), true
}
