package sqlq

import (
	"fmt"
	"time"
)

// Time scans a time stored either as Unix microseconds (SQLite) or as a timestamp (PostgreSQL) into
// *T, in UTC; NULL scans as the zero time. Stores that share one SQL text across both backends read
// their times through it.
type Time struct{ T *time.Time }

// Scan implements sql.Scanner.
func (v Time) Scan(src any) error {
	switch x := src.(type) {
	case nil:
		*v.T = time.Time{}
	case int64:
		*v.T = time.UnixMicro(x).UTC()
	case time.Time:
		*v.T = x.UTC()
	default:
		return fmt.Errorf("cannot scan %T as a time", src)
	}
	return nil
}
