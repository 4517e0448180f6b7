package db

import (
	"context"
	"errors"

	"github.com/sergas/core/internal/errs"
)

// outage marks the cause of an Unavailable error that means the database cannot be used at all (the
// server is down or restarting, the connection broke, the disk failed), as opposed to busy (SQLite's
// lock, a pool with no free connection), which passes by itself under less load.
type outage struct{ err error }

func (o *outage) Error() string { return o.err.Error() }
func (o *outage) Unwrap() error { return o.err }

// Down reports whether err, as returned by a store, says the database cannot be reached. The gRPC server
// uses it to report NOT_SERVING at once when real requests find the database gone, without waiting for
// the next periodic ping.
func Down(err error) bool {
	var o *outage
	return errors.As(err, &o)
}

// Splittable reports whether a group commit's failed batch is worth retrying in halves, so that the
// one input the database refuses fails alone: not when the database is unavailable (down or busy) or
// the transaction ran out of time, which smaller batches would only repeat. The audit and webhook
// committers both split by it.
func Splittable(err error) bool {
	return errs.KindOf(err) != errs.KindUnavailable && !Down(err) && !errors.Is(err, context.DeadlineExceeded)
}
