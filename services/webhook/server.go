// Package webhook is the webhook service: the inbox for inbound webhooks, serving
// sergas.webhook.v1.WebhookService.
package webhook

import (
	"context"
	"io"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/keyring"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// Server implements webhookv1.WebhookServiceServer over a Store.
type Server struct {
	webhookv1.UnsafeWebhookServiceServer
	store    store.Store
	cfg      Config
	sources  *sourceProvider
	bySender *ratelimit.Keyed
	backlog  *backlog
	refusals *refusals
	log      *slog.Logger
	// channels are notification channels known besides the configured ones (the service's own: chans);
	// nil for none.
	channels channelTokens
	// chans manages Zoho CRM notification channels with ring (sealing their tokens) and tokens (the
	// token service); nil when the store keeps no channels.
	chans *channels
	// deliveries keeps subscriptions and deliveries (issue #10); nil on a store without them.
	deliveries store.DeliveryStore
	// consumer is the pull consumers' state (wake-ups, poll interval).
	consumer *consumeState
	ring     *keyring.Keyring
	tokens   accessTokens
	now      func() time.Time

	// outbox sends the audit outbox (outbox.go).
	outbox outboxState
}

var _ webhookv1.WebhookServiceServer = (*Server)(nil)

// Option changes a server's collaborators.
type Option func(*Server)

// WithLogger sends the server's log lines (refusals, source reloads) to log.
func WithLogger(log *slog.Logger) Option { return func(s *Server) { s.log = log } }

// WithDenials sends deliveries that fail verification to the audit log's denial sink.
func WithDenials(sink auth.DenialSink) Option {
	return func(s *Server) { s.refusals.denials = sink }
}

// NewServer returns a server over s. cfg comes from LoadConfig (whose sources are checked there); a
// Config built otherwise has its Sources built here, and a source that fails to build is left out.
func NewServer(s store.Store, cfg Config, opts ...Option) *Server {
	// Whoever built cfg, the deny list is canonical, sorted and holds the headers always denied.
	cfg.HeaderDenylist, _ = headerDenylist(cfg.HeaderDenylist)
	srv := &Server{
		store: s, cfg: cfg, sources: cfg.sources,
		bySender: ratelimit.New(float64(cfg.AddressRatePerSecond), cfg.AddressRateBurst),
		backlog:  &backlog{max: int64(cfg.MaxQueueSize)},
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		now:      time.Now,
		consumer: newConsumeState(),
	}
	srv.backlog.counter, _ = s.(store.BacklogCounter)
	srv.refusals = newRefusals(srv.log, nil)
	for _, o := range opts {
		o(srv)
	}
	srv.refusals.log = srv.log
	srv.deliveries, _ = s.(store.DeliveryStore)
	if cs, ok := s.(store.ChannelStore); ok {
		srv.chans = newChannels(cs, srv.ring, srv.tokens, cfg.Channels, srv.log, func() time.Time { return srv.now() })
		srv.channels = srv.chans
	}
	if srv.sources == nil {
		set, err := buildSources(cfg.Sources, cfg.defaults(), secretResolver(func(string) (string, bool) { return "", false }), nil)
		if err != nil {
			srv.log.Error("webhook sources not usable", "service", "webhook", "error", err.Error())
		}
		srv.sources = &sourceProvider{static: set}
	}
	srv.sources.log.Store(srv.log)
	registerBacklogs(srv)
	return srv
}

// GetEvent implements webhookv1.WebhookServiceServer.
func (s *Server) GetEvent(ctx context.Context, req *webhookv1.GetEventRequest) (*webhookv1.GetEventResponse, error) {
	// Canonical (lower-case) form: SQLite compares ids as text, PostgreSQL as UUIDs.
	id, err := validate.UUID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	e, err := s.store.EventGet(ctx, id)
	if err != nil {
		return nil, err
	}
	return &webhookv1.GetEventResponse{Event: s.toProto(e)}, nil
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
	// Filters must be text both backends compare alike: NUL or invalid UTF-8 would fail only on
	// PostgreSQL (500) and match nothing on SQLite.
	for _, f := range []struct{ name, v string }{{"module", req.GetModule()}, {"operation", req.GetOperation()}, {"event_type", req.GetEventType()}} {
		if err := validate.Text(f.name, f.v, maxNormalisedText, false); err != nil {
			return nil, err
		}
	}
	p := store.EventListParams{Source: req.GetSource(), Status: store.Status(req.GetStatus()), Module: req.GetModule(),
		Operation: req.GetOperation(), EventType: req.GetEventType(), Limit: size + 1}
	if p.After, err = decodeCursor(req.GetPageToken()); err != nil {
		return nil, err
	}
	es, err := s.store.EventList(ctx, p)
	if err != nil {
		return nil, err
	}
	resp := &webhookv1.ListEventsResponse{}
	es, next, more := store.Page(es, size, p.After)
	if more {
		resp.NextPageToken = encodeCursor(next)
	}
	for _, e := range es {
		resp.Events = append(resp.Events, s.toProto(e))
	}
	return resp, nil
}

// zohoEvent reports whether e is a Zoho CRM notification, whose body holds its channel's token: its
// source is zoho-crm now, or it was normalised as one when stored (module or operation set), so that
// removing or re-configuring the source does not expose the tokens of events stored before.
func (s *Server) zohoEvent(e *store.Event) bool {
	if e.Module != "" || e.Operation != "" {
		return true
	}
	src := s.sources.get()[e.Source]
	return src != nil && src.scheme == SchemeZohoCRM
}

func (s *Server) toProto(e *store.Event) *webhookv1.Event {
	out := &webhookv1.Event{
		Id: e.ID, Source: e.Source, DedupeKey: e.DedupeKey, Status: webhookv1.EventStatus(e.Status),
		ContentType: e.ContentType, Payload: e.Payload,
		ReceiveTime: timestamppb.New(e.ReceiveTime), UpdateTime: timestamppb.New(e.UpdateTime),
		AttemptCount: e.AttemptCount, SenderAddress: e.SenderAddress,
		Module: e.Module, Operation: e.Operation, RecordIds: e.RecordIDs, AffectedFields: e.AffectedFields, EventType: e.EventType,
	}
	if !e.ServerTime.IsZero() {
		out.ServerTime = timestamppb.New(e.ServerTime)
	}
	if len(out.Payload) > 0 && s.zohoEvent(e) {
		out.Payload = maskChannelToken(out.Payload)
	}
	for _, h := range visibleHeaders(e.Headers, s.cfg.HeaderDenylist) {
		out.Headers = append(out.Headers, &webhookv1.Header{Name: h.Name, Values: h.Values})
	}
	return out
}
