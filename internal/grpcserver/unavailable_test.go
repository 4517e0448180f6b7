package grpcserver

import (
	"context"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/ratelimit"
)

// A dependency that is down answers UNAVAILABLE with a RetryInfo saying when to try again (the gateway
// makes it 503 with Retry-After), and the cause stays in the server.
func TestUnavailableCarriesRetryInfo(t *testing.T) {
	p := &probe{do: func(context.Context) error {
		return errs.Wrap(errs.KindUnavailable, io.ErrUnexpectedEOF, "database unavailable")
	}}
	_, conn, _, _ := startProbe(t, p)
	err := call(t.Context(), conn)
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "database unavailable") || strings.Contains(st.Message(), "EOF") {
		t.Fatalf("got %v %q", st.Code(), st.Message())
	}
	wait, ok := ratelimit.RetryAfter(err)
	if !ok || wait != UnavailableRetryAfter {
		t.Fatalf("RetryInfo %v %v, want %v", wait, ok, UnavailableRetryAfter)
	}
}
