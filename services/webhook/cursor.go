package webhook

import (
	"strconv"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/services/webhook/store"
)

// encodeCursor is ListEvents' page token: the place in list order (transaction, seq) of the page's last
// event (see store.Cursor for why seq alone is not enough on PostgreSQL).
func encodeCursor(c store.Cursor) string {
	return pagetoken.Encode(strconv.FormatInt(c.Tx, 10), strconv.FormatInt(c.Seq, 10))
}

// decodeCursor reads a token made by encodeCursor; "" is the first page. A token of the earlier
// seq-only form is refused (InvalidArgument): the list starts again rather than risk skipping events.
func decodeCursor(token string) (store.Cursor, error) {
	if token == "" {
		return store.Cursor{}, nil
	}
	parts, err := pagetoken.Decode(token, 2)
	if err != nil {
		return store.Cursor{}, err
	}
	tx, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || tx < 0 || seq < 0 {
		return store.Cursor{}, errs.Invalid("page_token is not valid")
	}
	return store.Cursor{Tx: tx, Seq: seq}, nil
}
