package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// ErrorInfo on Ingest's refusals, so that the gateway can tell them from refusals of its own call by the
// guard: UNAUTHENTICATED with ErrorDomain/ErrorUnverified is the sender's bad or missing signature (401),
// where UNAUTHENTICATED without it is the gateway's credential being refused; RESOURCE_EXHAUSTED with
// ErrorRateLimited is the sender's address or the source over its rate (429), without it the gateway's
// own credential over its budget; with ErrorBodyTooLarge it is 413.
const (
	ErrorDomain       = "webhook.sergas"
	ErrorUnverified   = "DELIVERY_UNVERIFIED"
	ErrorBodyTooLarge = "BODY_TOO_LARGE"
	ErrorBacklogFull  = "BACKLOG_FULL"
	ErrorRateLimited  = "RATE_LIMITED"
)

// backlogRetryAfter is what a sender refused for a full backlog is told to wait.
const backlogRetryAfter = 5 * time.Second

// Ingest implements webhookv1.WebhookServiceServer. The event is committed before Ingest returns, so
// the gateway acknowledges only what is stored, and nothing refused is ever stored or remembered: a
// sender's retry of a refused delivery is a new delivery, never a duplicate.
//
// The checks run cheapest and most specific to the caller first: the sender address's budget, the
// source, the body limit and the headers, then the source's verification, the backlog, and only then
// the source's budget, which is shared with the source's real deliveries and so is spent only on a
// verified delivery that is about to be stored.
func (s *Server) Ingest(ctx context.Context, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	return s.ingest(ctx, s.sender(ctx), req)
}

// ingest is Ingest for a delivery from sender (one call's, or one item's of IngestBatch).
func (s *Server) ingest(ctx context.Context, sender string, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	now := s.now()
	src := s.sources.get()[req.GetSource()]
	label := unknownSourceLabel
	if src != nil {
		label = src.name
	}
	refuse := func(reason string, err error) (*webhookv1.IngestResponse, error) {
		s.refusals.refused(ctx, label, reason, sender, now)
		return nil, err
	}
	if ok, wait := s.bySender.Allow(senderBucket(sender), now); !ok {
		return refuse(reasonAddressLimited, withRetry(codes.ResourceExhausted, "sender address rate limit exceeded", ErrorRateLimited, wait))
	}
	if src == nil {
		if err := validate.Name("source", req.GetSource()); err != nil {
			return refuse(reasonUnknownSource, err)
		}
		return refuse(reasonUnknownSource, errs.NotFound("webhook source %q is not configured", req.GetSource()))
	}
	if len(req.GetBody()) > src.bodyLimit {
		return refuse(reasonBodyTooLarge, withInfo(codes.ResourceExhausted, fmt.Sprintf("body exceeds %d bytes", src.bodyLimit), ErrorBodyTooLarge, reasonBodyTooLarge))
	}
	headers, err := parseHeaders(req.GetHeaders())
	if err != nil {
		return refuse(reasonMalformedHeaders, err)
	}
	key, err := src.verifier.verify(ctx, &incoming{source: src.name, headers: headers, body: req.GetBody(), now: now, stored: s.channels})
	if err != nil {
		var r *refusal
		if !errors.As(err, &r) {
			// A lookup (of a stored channel) failed: the sender should retry, not be told it forged.
			reason := reasonStoreError
			if errs.KindOf(err) == errs.KindFailedPrecondition {
				reason = reasonChannelKeys
			}
			return refuse(reason, errs.Wrap(errs.KindUnavailable, err, "cannot verify the delivery now"))
		}
		if !r.unauthenticated() {
			return refuse(r.reason, errs.Invalid("%s", r.msg))
		}
		return refuse(r.reason, withInfo(codes.Unauthenticated, r.msg, ErrorUnverified, senderReason(r.reason)))
	}
	if s.backlog.full(ctx, now) {
		return refuse(reasonBacklogFull, withRetry(codes.Unavailable, "undelivered backlog is full", ErrorBacklogFull, backlogRetryAfter))
	}
	if ok, wait := src.limit.Allow(src.name, now); !ok {
		// Spent only here, on a verified delivery about to be stored, so that deliveries refused for any
		// other reason (a flooding address, a forged or malformed request, a full backlog) never use up
		// the budget of the source's real deliveries.
		return refuse(reasonSourceLimited, withRetry(codes.ResourceExhausted, "source rate limit exceeded", ErrorRateLimited, wait))
	}
	if key == "" {
		key = s.dedupeKey(src, headers, req.GetBody())
	}
	e := &store.Event{
		ID:            uuid.Must(uuid.NewV7()).String(),
		Source:        src.name,
		DedupeKey:     key,
		Status:        store.StatusPending,
		ContentType:   headers.Get("Content-Type"),
		Payload:       req.GetBody(),
		Headers:       storedHeaders(headers, s.cfg.HeaderDenylist),
		ReceiveTime:   now.UTC().Truncate(time.Microsecond),
		SenderAddress: sender,
		// Read only now, from a delivery about to be stored: refused ones never pay for it.
		Normalised: src.normaliser.normalise(req.GetBody()),
	}
	// With group commit on (Open), this waits for the transaction that stores e with the deliveries
	// gathered beside it (commit.go): the answer still comes only after e is committed.
	stored, dup, err := s.store.EventInsert(ctx, e)
	if err != nil {
		return refuse(reasonStoreError, err)
	}
	result := "stored"
	if dup {
		result = "duplicate"
	} else {
		// The event and its deliveries are committed: consumers waiting here look now, not at their
		// next poll.
		s.wakeConsumers()
	}
	acceptedCounter(label, result).Inc()
	return &webhookv1.IngestResponse{EventId: stored.ID, Duplicate: dup}, nil
}

// acceptedChildren caches acceptedTotal's children by source and result (configured sources, two
// results; never deleted), so that a stored delivery does not hash and look up its labels each time.
var acceptedChildren sync.Map // acceptedKey -> prometheus.Counter

type acceptedKey struct{ source, result string }

func acceptedCounter(source, result string) prometheus.Counter {
	k := acceptedKey{source, result}
	if c, ok := acceptedChildren.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c, _ := acceptedChildren.LoadOrStore(k, acceptedTotal.WithLabelValues(source, result))
	return c.(prometheus.Counter)
}

// dedupeKey is the key of a delivery whose verifier named none: for an unverified source the sender's
// delivery id when it sends one in a configured header (WEBHOOK_DEDUPE_HEADERS), otherwise, and for
// verified sources (whose unsigned headers are not the sender's word), a hash of the body, so that a
// sender retrying the same delivery is stored once.
func (s *Server) dedupeKey(src *source, h http.Header, body []byte) string {
	if src.scheme == SchemeNone {
		for _, name := range s.cfg.DedupeHeaders {
			if v := strings.TrimSpace(h.Get(name)); v != "" && len(v) <= 256 {
				return "id:" + v
			}
		}
	}
	return "sha256:" + bodyHash(body)
}

// withInfo is a status error carrying an ErrorInfo the gateway maps to its own HTTP answer; the
// refusal reason goes along for the sender to read.
func withInfo(code codes.Code, msg, reason, detail string) error {
	st, _ := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason,
		Metadata: map[string]string{"refusal": detail}})
	return st.Err()
}

// withRetry is withInfo with a RetryInfo saying when to try again (the gateway sends Retry-After).
func withRetry(code codes.Code, msg, reason string, wait time.Duration) error {
	st, _ := status.Convert(ratelimit.RetryError(code, msg, wait)).WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason})
	return st.Err()
}

// sender is the address of the delivery's sender: the one the guard found (auth.ClientAddr), so that the
// sender limit, denials and the stored event all agree. A server reached without a guard (its own tests)
// finds it itself, with the same rules.
func (s *Server) sender(ctx context.Context) string {
	if a := auth.ClientAddr(ctx); a != "" {
		return a
	}
	return clientaddr.FromGRPC(ctx, s.cfg.TrustedProxies)
}

// senderBucket is the rate-limit key of a sender address (clientaddr.Bucket: an IPv6 host's /64).
func senderBucket(addr string) string { return clientaddr.Bucket(addr) }

// senderReason is the refusal reason a sender reads: an unknown Zoho channel reads as a bad token, so
// that channel ids cannot be found by trying them (the metric and the audit log keep the true reason).
func senderReason(reason string) string {
	if reason == reasonUnknownChannel {
		return reasonBadSignature
	}
	return reason
}
