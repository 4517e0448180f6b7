package grpcserver

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/ratelimit"
)

// UnavailableRetryAfter is the retry delay sent with Unavailable: long enough not to hammer a restarting
// database, short enough that callers resume soon after it is back.
const UnavailableRetryAfter = time.Second

var kindCodes = map[errs.Kind]codes.Code{
	errs.KindInternal:           codes.Internal,
	errs.KindNotFound:           codes.NotFound,
	errs.KindAlreadyExists:      codes.AlreadyExists,
	errs.KindInvalid:            codes.InvalidArgument,
	errs.KindFailedPrecondition: codes.FailedPrecondition,
	errs.KindConflict:           codes.Aborted,
	errs.KindResourceExhausted:  codes.ResourceExhausted,
	errs.KindUnavailable:        codes.Unavailable,
}

// ToStatus maps an error to a gRPC status error that is safe to send: domain errors keep their
// caller-safe message, status errors pass through, and anything else becomes a bare Internal.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var de *errs.Error
	switch {
	case errors.As(err, &de):
		msg := de.Msg
		if de.Kind == errs.KindInternal || msg == "" {
			msg = "internal error"
		}
		if de.Kind == errs.KindUnavailable {
			// A dependency is down (database restarting, pool exhausted): tell the caller when to retry;
			// the gateway turns this into 503 with Retry-After.
			return ratelimit.RetryError(codes.Unavailable, msg, UnavailableRetryAfter)
		}
		return status.Error(kindCodes[de.Kind], msg)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return status.Error(codes.Internal, "internal error")
}
