package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/services/webhook/store"
)

// Ingest implements webhookv1.WebhookServiceServer. The event is committed before Ingest returns, so
// the gateway acknowledges (202) only what is stored.
//
// The checks run cheapest and most specific to the caller first: the sender address's budget, then the
// source and the request's shape, and only then the source's budget, which is shared with the source's
// real deliveries and so is spent only on a delivery that is about to be stored. Verification of the
// sender (by source) belongs between the request checks and the source's budget.
func (s *Server) Ingest(ctx context.Context, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	now := s.now()
	sender := s.sender(ctx)
	if ok, wait := s.bySender.Allow(senderBucket(sender), now); !ok {
		return nil, ratelimit.Exceeded("sender address", wait)
	}
	src, err := s.sources.get(req.GetSource())
	if err != nil {
		return nil, err
	}
	if len(req.GetBody()) > s.cfg.MaxBodyBytes {
		return nil, errs.New(errs.KindResourceExhausted, "body exceeds %d bytes", s.cfg.MaxBodyBytes)
	}
	headers, err := parseHeaders(req.GetHeaders())
	if err != nil {
		return nil, err
	}
	if err := src.spend(now); err != nil {
		return nil, err
	}
	e := &store.Event{
		ID:            uuid.Must(uuid.NewV7()).String(),
		Source:        src.name,
		DedupeKey:     s.dedupeKey(headers, req.GetBody()),
		Status:        store.StatusPending,
		ContentType:   headers.Get("Content-Type"),
		Payload:       req.GetBody(),
		Headers:       storedHeaders(headers, s.cfg.HeaderDenylist),
		ReceiveTime:   now.UTC().Truncate(time.Microsecond),
		SenderAddress: sender,
	}
	stored, dup, err := s.store.EventInsert(ctx, e)
	if err != nil {
		return nil, err
	}
	return &webhookv1.IngestResponse{EventId: stored.ID, Duplicate: dup}, nil
}

// dedupeKey is the sender's delivery id when it sends one in a configured header, otherwise a hash of
// the body, so that a sender retrying the same delivery is stored once.
func (s *Server) dedupeKey(h http.Header, body []byte) string {
	for _, name := range s.cfg.DedupeHeaders {
		if v := strings.TrimSpace(h.Get(name)); v != "" && len(v) <= 256 {
			return "id:" + v
		}
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
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
