package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// ingest hands the exact request bytes and headers to the webhook service and answers 202 only once the
// service has stored them; any failure answers with an error status so that the sender retries.
func (g *Gateway) ingest(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeStatus(w, http.StatusMethodNotAllowed, codes.InvalidArgument, "webhooks are received with POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.WebhookMaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeStatus(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf("body exceeds %d bytes", g.cfg.WebhookMaxBodyBytes))
			return
		}
		g.httpError(w, r, status.Error(codes.InvalidArgument, "could not read request body"))
		return
	}
	req := &webhookv1.IngestRequest{Source: r.PathValue("source"), Body: body}
	for name, values := range r.Header {
		for _, v := range values {
			// Header values travel as protobuf strings, which must be UTF-8: without this check such a
			// delivery fails to marshal here and answers 500, so the sender would retry it for ever.
			if !utf8.ValidString(v) {
				writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("header %s is not valid UTF-8", name))
				return
			}
		}
		req.Headers = append(req.Headers, &webhookv1.Header{Name: name, Values: values})
	}
	resp, err := g.webhook.Ingest(r.Context(), req)
	if err != nil {
		g.httpError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"eventId": resp.GetEventId(), "duplicate": resp.GetDuplicate()})
}

// httpError writes err the way grpc-gateway writes errors for every other route.
func (g *Gateway) httpError(w http.ResponseWriter, r *http.Request, err error) {
	_, out := runtime.MarshalerForRequest(g.mux, r)
	runtime.HTTPError(r.Context(), g.mux, out, w, r, err)
}

// writeStatus writes an error body of the same shape with an explicit HTTP status, for the cases where
// HTTP has a more precise status than the gRPC code's default mapping (413 for a too-large body).
func writeStatus(w http.ResponseWriter, httpCode int, code codes.Code, msg string) {
	body, _ := protojson.Marshal(status.New(code, msg).Proto())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_, _ = w.Write(body)
}
