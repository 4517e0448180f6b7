// Package webhook is the webhook service: the inbox for inbound webhooks, serving
// sergas.webhook.v1.WebhookService.
package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// Headers never stored: they carry the sender's or a proxy's credentials.
var droppedHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// Server implements webhookv1.WebhookServiceServer over a Store.
type Server struct {
	webhookv1.UnsafeWebhookServiceServer
	store store.Store
	cfg   Config
	limit *ratelimit.Keyed
	now   func() time.Time
}

var _ webhookv1.WebhookServiceServer = (*Server)(nil)

// NewServer returns a server over s.
func NewServer(s store.Store, cfg Config) *Server {
	return &Server{store: s, cfg: cfg, limit: ratelimit.New(float64(cfg.RatePerSecond), cfg.RateBurst), now: time.Now}
}

// Ingest implements webhookv1.WebhookServiceServer. The event is committed before Ingest returns, so
// the gateway acknowledges (202) only what is stored.
func (s *Server) Ingest(ctx context.Context, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	if err := validate.Name("source", req.GetSource()); err != nil {
		return nil, err
	}
	if !slices.Contains(s.cfg.Sources, req.GetSource()) {
		return nil, errs.NotFound("webhook source %q is not configured", req.GetSource())
	}
	if ok, wait := s.limit.Allow(req.GetSource(), s.now()); !ok {
		return nil, ratelimit.Exceeded("source", wait)
	}
	if len(req.GetBody()) > s.cfg.MaxBodyBytes {
		return nil, errs.New(errs.KindResourceExhausted, "body exceeds %d bytes", s.cfg.MaxBodyBytes)
	}
	headers := http.Header{}
	for _, h := range req.GetHeaders() {
		if h.GetName() == "" || len(h.GetName()) > 256 {
			return nil, errs.Invalid("header names must be 1-256 bytes")
		}
		for _, v := range h.GetValues() {
			headers.Add(h.GetName(), v)
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	e := &store.Event{
		ID:          uuid.Must(uuid.NewV7()).String(),
		Source:      req.GetSource(),
		DedupeKey:   s.dedupeKey(headers, req.GetBody()),
		Status:      store.StatusPending,
		ContentType: headers.Get("Content-Type"),
		Payload:     req.GetBody(),
		Headers:     keptHeaders(headers),
		ReceiveTime: now,
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

func keptHeaders(h http.Header) []store.Header {
	for _, d := range droppedHeaders {
		h.Del(d)
	}
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]store.Header, 0, len(names))
	for _, n := range names {
		out = append(out, store.Header{Name: n, Values: h[n]})
	}
	return out
}

// GetEvent implements webhookv1.WebhookServiceServer.
func (s *Server) GetEvent(ctx context.Context, req *webhookv1.GetEventRequest) (*webhookv1.GetEventResponse, error) {
	if _, err := uuid.Parse(req.GetId()); err != nil {
		return nil, errs.Invalid("id must be an event id (UUID)")
	}
	e, err := s.store.EventGet(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &webhookv1.GetEventResponse{Event: toProto(e)}, nil
}

// ListEvents implements webhookv1.WebhookServiceServer.
func (s *Server) ListEvents(ctx context.Context, req *webhookv1.ListEventsRequest) (*webhookv1.ListEventsResponse, error) {
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if req.GetSource() != "" {
		if err := validate.Name("source", req.GetSource()); err != nil {
			return nil, err
		}
	}
	if _, ok := webhookv1.EventStatus_name[int32(req.GetStatus())]; !ok {
		return nil, errs.Invalid("status is not a known value")
	}
	p := store.EventListParams{Source: req.GetSource(), Status: store.Status(req.GetStatus()), Limit: size + 1}
	if p.After, _, err = pagetoken.DecodeInt(req.GetPageToken()); err != nil {
		return nil, err
	}
	es, err := s.store.EventList(ctx, p)
	if err != nil {
		return nil, err
	}
	resp := &webhookv1.ListEventsResponse{}
	es, resp.NextPageToken = pagetoken.Page(es, size, func(e *store.Event) string { return pagetoken.EncodeInt(e.Seq) })
	for _, e := range es {
		resp.Events = append(resp.Events, toProto(e))
	}
	return resp, nil
}

func toProto(e *store.Event) *webhookv1.Event {
	out := &webhookv1.Event{
		Id: e.ID, Source: e.Source, DedupeKey: e.DedupeKey, Status: webhookv1.EventStatus(e.Status),
		ContentType: e.ContentType, Payload: e.Payload,
		ReceiveTime: timestamppb.New(e.ReceiveTime), UpdateTime: timestamppb.New(e.UpdateTime),
		AttemptCount: e.AttemptCount,
	}
	for _, h := range e.Headers {
		out.Headers = append(out.Headers, &webhookv1.Header{Name: h.Name, Values: h.Values})
	}
	return out
}
