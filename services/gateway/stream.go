package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Server-streaming RPCs (the audit export) answer newline-delimited JSON, one message a line, flushed as
// each arrives. They may run far longer than GATEWAY_REQUEST_TIMEOUT, and http.TimeoutHandler would
// both cut them and buffer the whole body (its writer cannot flush), so their routes bypass it. Their
// bound is the client instead: every write must complete within the request timeout, so a client that
// stops reading is cut, and one that goes away cancels the RPC at once (its connection closing cancels
// the request's context).

// ndjson is the Content-Type of streamed answers.
const ndjson = "application/x-ndjson"

// StreamContentType makes grpc-gateway label streamed answers as NDJSON (application/json otherwise);
// an error answered before the first message keeps application/json.
func (strictJSON) StreamContentType(any) string { return ndjson }

// isStream reports whether r is for a server-streaming route. Paths are compared unescaped, as the
// router compares them; streaming routes have no path variables (buildRoutes checks), so their keys are
// the method and path as they are: routeKey's rewriting of "{…}" (a regular expression run on every
// request) could only turn a path into one no key holds.
func (t *routeTable) isStream(r *http.Request) bool {
	return t.streams[r.Method+" "+r.URL.Path]
}

// errStopping cancels the streams in flight when the gateway stops.
var errStopping = errors.New("the gateway is stopping")

// streamError is grpc-gateway's stream error handler: the status of the last line of a stream that
// failed. A stream the gateway ended because it is stopping says so (UNAVAILABLE: export the rest
// again, from another replica or later) rather than "context canceled".
func streamError(ctx context.Context, err error) *status.Status {
	if errors.Is(context.Cause(ctx), errStopping) {
		return status.New(codes.Unavailable, "the gateway is stopping; this answer is incomplete, ask again for the rest")
	}
	return runtime.DefaultStreamErrorHandler(ctx, err)
}

// serveStream serves a streaming route without the request timeout, under a deadline per write. When
// the gateway stops, the stream ends at once with a last line saying so, instead of holding the stop for
// SHUTDOWN_TIMEOUT and being cut without a word.
func (g *Gateway) serveStream(w http.ResponseWriter, r *http.Request, stopping <-chan struct{}) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	go func() {
		select {
		case <-stopping:
			cancel(errStopping)
		case <-ctx.Done():
		}
	}()
	r = r.WithContext(ctx)
	rc := http.NewResponseController(w)
	// Set before any message, so that an empty export is labelled too.
	w.Header().Set("Content-Type", ndjson)
	dw := &deadlineWriter{ResponseWriter: w, rc: rc, within: g.cfg.RequestTimeout}
	g.handler.ServeHTTP(dw, r)
	// The end of the chunked body is written after the handler returns: give it a fresh deadline too.
	_ = rc.SetWriteDeadline(time.Now().Add(dw.within))
}

// deadlineWriter gives every write and flush its own deadline, replacing the server's WriteTimeout,
// which counts from the start of the request.
type deadlineWriter struct {
	http.ResponseWriter
	rc     *http.ResponseController
	within time.Duration
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.within))
	return d.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController calls to flush (grpc-gateway flushes after each message).
func (d *deadlineWriter) FlushError() error {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.within))
	return d.rc.Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
