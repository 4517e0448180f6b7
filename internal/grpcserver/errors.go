package grpcserver

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/errs"
)

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
		return status.Error(kindCodes[de.Kind], msg)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return status.Error(codes.Internal, "internal error")
}
