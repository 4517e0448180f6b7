// Package errs holds the domain errors that services and stores share.
//
// Errors are translated exactly twice: a store turns its driver's errors into these kinds, and the gRPC
// interceptor in internal/grpcserver turns these kinds into status codes. The message of an *Error is
// written for the caller and must never hold a driver message, a path or a secret.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies a domain error; each kind maps to one gRPC code.
type Kind int

// The kinds of domain error.
const (
	// KindInternal is a failure the caller cannot fix; its details stay in the server log.
	KindInternal Kind = iota
	// KindNotFound: the named thing does not exist.
	KindNotFound
	// KindAlreadyExists: the thing to create exists already.
	KindAlreadyExists
	// KindInvalid: the request is malformed; the message says which field and why.
	KindInvalid
	// KindFailedPrecondition: the request is well formed but the system is not in a state to serve it.
	KindFailedPrecondition
	// KindConflict: a concurrent change won; retrying the whole operation may succeed.
	KindConflict
	// KindResourceExhausted: a quota or rate limit was reached.
	KindResourceExhausted
	// KindUnavailable: a dependency (database, provider) is down or overloaded; retry later.
	KindUnavailable
)

// Error is a domain error with a message safe to show to callers.
type Error struct {
	Kind Kind
	Msg  string
	// Err is the underlying cause, kept for server logs only.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, errs.ErrNotFound) match any *Error of the same kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Msg == "" && t.Err == nil && t.Kind == e.Kind
}

// Sentinels for errors.Is; they match every error of their kind.
var (
	ErrNotFound           = &Error{Kind: KindNotFound}
	ErrAlreadyExists      = &Error{Kind: KindAlreadyExists}
	ErrInvalid            = &Error{Kind: KindInvalid}
	ErrFailedPrecondition = &Error{Kind: KindFailedPrecondition}
	ErrConflict           = &Error{Kind: KindConflict}
	ErrResourceExhausted  = &Error{Kind: KindResourceExhausted}
	ErrUnavailable        = &Error{Kind: KindUnavailable}
)

// New returns an error of the given kind with a caller-safe message.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of the given kind whose message is safe for callers while cause stays in logs.
func Wrap(kind Kind, cause error, msg string) *Error {
	return &Error{Kind: kind, Msg: msg, Err: cause}
}

// NotFound reports that the named thing does not exist.
func NotFound(format string, args ...any) *Error { return New(KindNotFound, format, args...) }

// Invalid reports a malformed request.
func Invalid(format string, args ...any) *Error { return New(KindInvalid, format, args...) }

// KindOf returns the kind of err, or KindInternal when err is not a domain error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Message is what a caller may read of err: a domain error's own message (never its cause), "internal
// error" for anything else.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return "internal error"
}
