package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// validPath answers 400 for a path that is not valid UTF-8 once unescaped (/v1/connections/zoho/a%FF):
// protobuf strings must be UTF-8, so such a value would fail to marshal inside the gateway and answer 500.
func validPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !utf8.ValidString(r.URL.Path) {
			writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "request path is not valid UTF-8")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// restInput checks what every REST request carries before it is routed: a query string that parses and
// is UTF-8, and a body within GATEWAY_MAX_BODY_BYTES (413 otherwise). The body is read here, bounded,
// so that a too-large body is told apart from a malformed one, which the generated handlers cannot do.
func (g *Gateway) restInput(next http.Handler) http.Handler {
	limit := g.cfg.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "malformed query string")
			return
		}
		if !validUTF8(values) {
			writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "query string is not valid UTF-8")
			return
		}
		if r.ContentLength > limit {
			writeStatus(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf("body exceeds %d bytes", limit))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if err != nil {
				writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "could not read request body")
				return
			}
			if int64(len(body)) > limit {
				writeStatus(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf("body exceeds %d bytes", limit))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

// validUTF8 reports whether every key and value is UTF-8, as the protobuf strings they become must be.
func validUTF8(values url.Values) bool {
	for k, vs := range values {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// queryGuard runs inside grpc-gateway once a route has matched, refusing query parameters the route does
// not read.
func (g *Gateway) queryGuard(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		values := r.Form // parsed by the mux for a form POST served as another method
		if values == nil {
			values, _ = url.ParseQuery(r.URL.RawQuery) // restInput has refused one that does not parse
		}
		if !validUTF8(values) { // form fields, which restInput has not seen
			g.httpError(w, r, status.Error(codes.InvalidArgument, "form is not valid UTF-8"))
			return
		}
		if err := g.routes.checkQuery(r, values); err != nil {
			g.httpError(w, r, status.Error(codes.InvalidArgument, err.Error()))
			return
		}
		next(w, r, params)
	}
}

// routingError answers a request no route takes. A path served under other methods answers 405 with
// Allow listing them (grpc-gateway answers 501 without Allow).
func (g *Gateway) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	allow := g.allowed(r)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	// InvalidArgument, as the webhook route answers a wrong method: the caller's request is at fault, and
	// Unimplemented would read as a route we have yet to build.
	writeStatus(w, http.StatusMethodNotAllowed, codes.InvalidArgument, "method not allowed; this path takes "+strings.Join(allow, ", "))
}

// allowed lists the methods whose routes match r's path, asking a second grpc-gateway mux holding the
// same routes, whose handlers only record that they were reached. Routing stays grpc-gateway's own.
func (g *Gateway) allowed(r *http.Request) []string {
	var allow []string
	for _, m := range g.routes.methods {
		matched := false
		probe := &http.Request{Method: m, URL: r.URL, Header: http.Header{}, Host: r.Host, Body: http.NoBody}
		probe = probe.WithContext(context.WithValue(r.Context(), probeKey{}, &matched))
		g.probe.ServeHTTP(discardWriter{}, probe)
		if matched {
			allow = append(allow, m)
		}
	}
	return allow
}

type probeKey struct{}

// probeMatch is the probe mux's only middleware: it marks the request matched and never calls the route.
func probeMatch(runtime.HandlerFunc) runtime.HandlerFunc {
	return func(_ http.ResponseWriter, r *http.Request, _ map[string]string) {
		if p, ok := r.Context().Value(probeKey{}).(*bool); ok {
			*p = true
		}
	}
}

// The probe mux answers nothing: a path that matches no route is simply not matched.
func probeError(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, error) {
}
func probeRoutingError(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

// strictJSON decodes a REST body as exactly one JSON value: grpc-gateway's decoder stops after the first
// value and the generated handlers discard the rest, so `{"a":1} garbage` would be accepted.
type strictJSON struct{ *runtime.HTTPBodyMarshaler }

func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r) // bounded by restInput
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF // no body: the generated handlers accept that
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return err
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return errors.New("unexpected data after the JSON body")
		}
		return m.Unmarshal(value, v)
	})
}
