package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/ratelimit"
)

// ingest hands the exact request bytes and headers to the webhook service and answers 202 only once the
// service has stored them; any failure answers with an error status so that the sender retries.
func (g *Gateway) ingest(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeStatus(w, http.StatusMethodNotAllowed, codes.InvalidArgument, "webhooks are received with POST")
		return
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, g.cfg.WebhookMaxBodyBytes), r.ContentLength)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeStatus(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf("body exceeds %d bytes", g.cfg.WebhookMaxBodyBytes))
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The server's ReadTimeout (GATEWAY_REQUEST_TIMEOUT) cut a body that arrived too slowly.
			writeStatus(w, http.StatusRequestTimeout, codes.DeadlineExceeded, "request body not received within the request timeout")
			return
		}
		g.httpError(w, r, status.Error(codes.InvalidArgument, "could not read request body"))
		return
	}
	req := &webhookv1.IngestRequest{Source: r.PathValue("source"), Body: body, Headers: make([]*webhookv1.Header, 0, len(r.Header))}
	headers := make([]webhookv1.Header, len(r.Header)) // one allocation for all of them
	for name, values := range r.Header {
		for _, v := range values {
			// Header values travel as protobuf strings, which must be UTF-8: without this check such a
			// delivery fails to marshal here and answers 500, so the sender would retry it for ever.
			if !utf8.ValidString(v) {
				writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("header %s is not valid UTF-8", name))
				return
			}
		}
		h := &headers[len(req.Headers)]
		h.Name, h.Values = name, values
		req.Headers = append(req.Headers, h)
	}
	// The gateway's own credential, never the sender's Authorization header (that one is only stored with
	// the delivery, if the deny list lets it).
	ctx := g.withWebhookCredential(r.Context())
	resp, err := g.ingests.ingest(ctx, req)
	if err != nil {
		if timedOut(ctx, err) {
			// GATEWAY_REQUEST_TIMEOUT ran out (serveBounded's deadline, or http.TimeoutHandler's, which
			// then answers this itself): the answer TimeoutHandler gives, not the 504 of DEADLINE_EXCEEDED.
			writeStatus(w, http.StatusServiceUnavailable, codes.DeadlineExceeded, "request timed out")
			return
		}
		g.ingestError(w, r, err)
		return
	}
	// 202 for a new event, 200 for a repeat of one already stored: both say the sender may stop retrying.
	code := http.StatusAccepted
	if resp.GetDuplicate() {
		code = http.StatusOK
	}
	writeIngested(w, code, resp.GetEventId(), resp.GetDuplicate())
}

// deadlineSlack is how close to its deadline a call cut short counts as cut by it (see timedOut).
const deadlineSlack = 50 * time.Millisecond

// timedOut reports whether the request's deadline ended the call: its context says so, or the call was
// cut (CANCELLED, DEADLINE_EXCEEDED) at its deadline before the context's own timer fired. The service
// gets the deadline rounded down in grpc-timeout and resets the stream when it passes, which can reach
// the gateway a moment before its own timer; that must still answer "request timed out", not a 504
// naming the transport.
func timedOut(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	if c := status.Code(err); c != codes.Canceled && c != codes.DeadlineExceeded {
		return false
	}
	d, ok := ctx.Deadline()
	return ok && time.Until(d) < deadlineSlack
}

// The webhook service marks its own refusals with an ErrorInfo of this domain (services/webhook:
// ErrorDomain, ErrorUnverified, ErrorBodyTooLarge, ErrorRateLimited; the gateway imports no service), so
// that they are told from the guard's refusals of the gateway's own call.
const (
	webhookErrorDomain  = "webhook.sergas"
	webhookUnverified   = "DELIVERY_UNVERIFIED"
	webhookBodyTooLarge = "BODY_TOO_LARGE"
)

// ownCredentialRetryAfter is what a sender is told to wait while the webhook service refuses the
// gateway's own call: an operator has to fix the gateway's credential.
const ownCredentialRetryAfter = 30 * time.Second

var ingestCredentialRefused = promauto.NewCounter(prometheus.CounterOpts{
	Name: "gateway_webhook_credential_refused_total",
	Help: "Webhook deliveries answered 503 because the webhook service's guard refused the gateway's own call: its credential (UNAUTHENTICATED, PERMISSION_DENIED) or its budget (RESOURCE_EXHAUSTED), without a webhook refusal.",
})

// ingestError answers a refused delivery. Two UNAUTHENTICATED answers must not be confused: the
// sender's signature failing (the service says so with its ErrorInfo: 401, no Bearer challenge, since
// the sender authenticates with a signature, not with our credentials) and the gateway's own credential
// being refused by the service's guard (no ErrorInfo: 503 with Retry-After, so that the sender keeps
// its delivery and retries, and an error in the log for the operator). Everything else is answered as
// on every other route (429 and 503 with Retry-After from the service's RetryInfo, 400, 404).
func (g *Gateway) ingestError(w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	reason := ""
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == webhookErrorDomain {
			reason = ei.GetReason()
		}
	}
	switch {
	case st.Code() == codes.Unauthenticated && reason == webhookUnverified:
		writeStatus(w, http.StatusUnauthorized, codes.Unauthenticated, st.Message())
	case st.Code() == codes.ResourceExhausted && reason == webhookBodyTooLarge:
		writeStatus(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, st.Message())
	case (st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied) && reason == "":
		ingestCredentialRefused.Inc()
		g.transportLog.Error(r.Context(), "the webhook service refused the gateway's own credential: deliveries are answered 503 until it presents one with webhook:ingest",
			"service", "gateway", "code", st.Code().String())
		w.Header().Set("Retry-After", strconv.Itoa(int(ownCredentialRetryAfter.Seconds())))
		writeStatus(w, http.StatusServiceUnavailable, codes.Unavailable, "service unavailable")
	case st.Code() == codes.ResourceExhausted && reason == "":
		// A guard budget of the gateway's own key (webhook:ingest itself spends none: the sender address's
		// and the source's budgets bound deliveries), e.g. the key also declared an internal client, or
		// its failed-call budget: the sender is not sending too much, we are taking too little.
		ingestCredentialRefused.Inc()
		g.transportLog.Error(r.Context(), "the gateway's own credential is over a rate limit at the webhook service: check the RATE_LIMIT_* budgets that apply to GATEWAY_WEBHOOK_API_KEY",
			"service", "gateway")
		wait, ok := ratelimit.RetryAfter(err)
		if !ok {
			wait = time.Second
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeStatus(w, http.StatusServiceUnavailable, codes.Unavailable, "service unavailable")
	default:
		g.httpError(w, r, err)
	}
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
