package gateway

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/ratelimit"
)

// realm names the protection space in WWW-Authenticate challenges.
const realm = "sergas"

// errorHandler writes errors as grpc-gateway does, adding Retry-After when the service said when to retry
// and an RFC 6750 challenge to 401 and 403 answers.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if wait, ok := ratelimit.RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	}
	if st, ok := status.FromError(err); ok {
		var c string
		switch st.Code() {
		case codes.Unauthenticated:
			// RFC 6750 §3.1: no error code when the request had no bearer token (none at all, or another
			// scheme); invalid_token when the token it had was refused.
			c = `Bearer realm="` + realm + `"`
			if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Bearer") {
				c = challenge("invalid_token", st.Message())
			}
		case codes.PermissionDenied:
			c = challenge("insufficient_scope", st.Message())
		}
		if c != "" {
			// grpc-gateway sets WWW-Authenticate to the bare status message on 401; replace it as the
			// header is written.
			w = &challengeWriter{ResponseWriter: w, challenge: c}
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, withTraceID(r.Context(), err))
}

// challengeWriter sets WWW-Authenticate when the status line is written.
type challengeWriter struct {
	http.ResponseWriter
	challenge string
	written   bool
}

func (c *challengeWriter) WriteHeader(code int) {
	if !c.written {
		c.written = true
		c.Header().Set("WWW-Authenticate", c.challenge)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *challengeWriter) Write(b []byte) (int, error) {
	if !c.written {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// challenge is a Bearer challenge with an error code and description (RFC 6750 §3).
func challenge(code, description string) string {
	return `Bearer realm="` + realm + `", error="` + code + `", error_description="` + quotable(description) + `"`
}

// quotable keeps only the characters RFC 6750 allows in error_description (%x20-21 / %x23-5B / %x5D-7E),
// replacing the others, so that a message can never break out of the quoted string.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7E || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}
