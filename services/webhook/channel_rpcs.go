package webhook

import (
	"context"
	neturl "net/url"
	"regexp"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// Channel request limits.
const (
	maxChannelEvents = 50
	maxNotifyURL     = 2048
)

var (
	// channelIDRequest is a channel id as the RPCs that read one take it: 1-18 digits.
	channelIDRequest = regexp.MustCompile(`^[0-9]{1,18}$`)
	// newChannelIDRequest is a channel id a caller may choose: Zoho's ids are positive longs (18 digits
	// fit), written without leading zeros, since Zoho's notifications carry the number it parsed ("007"
	// comes back as 7, a channel we would not know).
	newChannelIDRequest = regexp.MustCompile(`^[1-9][0-9]{0,17}$`)
	// channelEvent is "<Module API name>.<operation>" as Zoho's Notification API takes it.
	channelEvent = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}\.(all|create|edit|delete)$`)
)

// channelsReady is the manager, or FailedPrecondition when the service runs without channel support.
func (s *Server) channelsReady() (*channels, error) {
	if s.chans == nil {
		return nil, errs.New(errs.KindFailedPrecondition, "Zoho channels are not available: the webhook store does not keep them")
	}
	return s.chans, nil
}

// CreateChannel implements webhookv1.WebhookServiceServer.
func (s *Server) CreateChannel(ctx context.Context, req *webhookv1.CreateChannelRequest) (*webhookv1.CreateChannelResponse, error) {
	m, err := s.channelsReady()
	if err != nil {
		return nil, err
	}
	c, err := s.newChannel(req)
	if err != nil {
		return nil, err
	}
	if c, err = m.create(ctx, c); err != nil {
		return nil, err
	}
	return &webhookv1.CreateChannelResponse{Channel: s.channelProto(c)}, nil
}

// newChannel checks a creation request and returns the channel it describes.
func (s *Server) newChannel(req *webhookv1.CreateChannelRequest) (*store.Channel, error) {
	id := req.GetChannelId()
	if id != "" && !newChannelIDRequest.MatchString(id) {
		return nil, errs.Invalid("channel_id must be a positive number of 1-18 digits without leading zeros")
	}
	if err := validate.Name("source", req.GetSource()); err != nil {
		return nil, err
	}
	if src := s.sources.get()[req.GetSource()]; src == nil || src.scheme != SchemeZohoCRM {
		return nil, errs.New(errs.KindFailedPrecondition, "source %q is not a configured zoho-crm source", req.GetSource())
	}
	if err := validate.ID("connection_id", req.GetConnectionId(), 128); err != nil {
		return nil, err
	}
	events := req.GetEvents()
	if len(events) == 0 || len(events) > maxChannelEvents {
		return nil, errs.Invalid("events must hold 1-%d entries", maxChannelEvents)
	}
	for i, e := range events {
		if !channelEvent.MatchString(e) {
			return nil, errs.Invalid("events[%d] must be <Module>.<operation> with operation all, create, edit or delete, for example Deals.all", i)
		}
		if slices.Contains(events[:i], e) {
			return nil, errs.Invalid("events[%d] repeats %s", i, e)
		}
	}
	url := req.GetNotifyUrl()
	if url == "" {
		if s.cfg.Channels.PublicURL == "" {
			return nil, errs.Invalid("notify_url is required (or set WEBHOOK_PUBLIC_URL, the gateway's address as Zoho reaches it)")
		}
		url = s.cfg.Channels.PublicURL + "/webhooks/" + req.GetSource()
	}
	if err := validate.First(validate.Text("notify_url", url, maxNotifyURL, true), validate.HTTPURL("notify_url", url)); err != nil {
		return nil, err
	}
	// The Zoho client refuses to send these (credentials in the URL Zoho would keep; a fragment it
	// cannot post to): refused here as the caller's mistake.
	if u, err := neturl.Parse(url); err != nil || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, errs.Invalid("notify_url must be an absolute http(s) URL without user information or fragment")
	}
	if id == "" {
		var err error
		if id, err = newChannelID(); err != nil {
			return nil, err
		}
	}
	if src := s.configuredChannel(id); src != "" {
		// Enabling it at Zoho would replace the hand-made channel's token there, while notifications
		// are still checked against the configured one.
		return nil, errs.New(errs.KindAlreadyExists, "channel %s is configured by hand in source %s (zoho_crm.channels)", id, src)
	}
	return &store.Channel{ID: id, Source: req.GetSource(), ConnectionID: req.GetConnectionId(), Events: slices.Clone(events),
		NotifyURL: url, ReturnAffectedFieldValues: req.GetReturnAffectedFieldValues()}, nil
}

// configuredChannel names the zoho-crm source whose configuration lists channel id, "" when none does.
func (s *Server) configuredChannel(id string) string {
	for name, src := range s.sources.get() {
		if v, ok := src.verifier.(*zohoVerifier); ok {
			if _, found, _ := v.tokens.channelToken(context.Background(), name, id); found {
				return name
			}
		}
	}
	return ""
}

// channel reads the named channel after checking the id.
func (s *Server) channel(ctx context.Context, id string) (*channels, *store.Channel, error) {
	m, err := s.channelsReady()
	if err != nil {
		return nil, nil, err
	}
	if !channelIDRequest.MatchString(id) {
		return nil, nil, errs.Invalid("channel_id must be 1-18 digits")
	}
	c, err := m.store.ChannelGet(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return m, c, nil
}

// GetChannel implements webhookv1.WebhookServiceServer.
func (s *Server) GetChannel(ctx context.Context, req *webhookv1.GetChannelRequest) (*webhookv1.GetChannelResponse, error) {
	_, c, err := s.channel(ctx, req.GetChannelId())
	if err != nil {
		return nil, err
	}
	return &webhookv1.GetChannelResponse{Channel: s.channelProto(c)}, nil
}

// ListChannels implements webhookv1.WebhookServiceServer.
func (s *Server) ListChannels(ctx context.Context, req *webhookv1.ListChannelsRequest) (*webhookv1.ListChannelsResponse, error) {
	m, err := s.channelsReady()
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if req.GetSource() != "" {
		if err := validate.Name("source", req.GetSource()); err != nil {
			return nil, err
		}
	}
	if _, ok := webhookv1.ChannelState_name[int32(req.GetState())]; !ok {
		return nil, errs.Invalid("state is not a known value")
	}
	p := store.ChannelListParams{Source: req.GetSource(), State: store.ChannelState(req.GetState()), Limit: size + 1, Now: s.now()}
	if req.GetPageToken() != "" {
		parts, err := pagetoken.Decode(req.GetPageToken(), 1)
		if err != nil || !channelIDRequest.MatchString(parts[0]) {
			return nil, errs.Invalid("page_token is not valid")
		}
		p.AfterID = parts[0]
	}
	cs, err := m.store.ChannelList(ctx, p)
	if err != nil {
		return nil, err
	}
	cs, next := pagetoken.Page(cs, size, func(c *store.Channel) string { return pagetoken.Encode(c.ID) })
	resp := &webhookv1.ListChannelsResponse{NextPageToken: next}
	for _, c := range cs {
		resp.Channels = append(resp.Channels, s.channelProto(c))
	}
	return resp, nil
}

// RenewChannel implements webhookv1.WebhookServiceServer.
func (s *Server) RenewChannel(ctx context.Context, req *webhookv1.RenewChannelRequest) (*webhookv1.RenewChannelResponse, error) {
	m, c, err := s.channel(ctx, req.GetChannelId())
	if err != nil {
		return nil, err
	}
	if c.State == store.ChannelDisabled {
		return nil, errs.New(errs.KindFailedPrecondition, "channel %s is disabled; create a new one", c.ID)
	}
	if c, err = m.renew(ctx, c); err != nil {
		return nil, err
	}
	return &webhookv1.RenewChannelResponse{Channel: s.channelProto(c)}, nil
}

// DisableChannel implements webhookv1.WebhookServiceServer.
func (s *Server) DisableChannel(ctx context.Context, req *webhookv1.DisableChannelRequest) (*webhookv1.DisableChannelResponse, error) {
	m, c, err := s.channel(ctx, req.GetChannelId())
	if err != nil {
		return nil, err
	}
	if c, err = m.disable(ctx, c); err != nil {
		return nil, err
	}
	return &webhookv1.DisableChannelResponse{Channel: s.channelProto(c)}, nil
}

// channelProto is c as callers see it: without its token, and expired once its expiry has passed even
// before the renewer has recorded so.
func (s *Server) channelProto(c *store.Channel) *webhookv1.Channel {
	state := c.State
	if state != store.ChannelDisabled && !c.ExpireTime.After(s.now()) {
		state = store.ChannelExpired
	}
	out := &webhookv1.Channel{
		ChannelId: c.ID, Source: c.Source, ConnectionId: c.ConnectionID, Events: c.Events, NotifyUrl: c.NotifyURL,
		ReturnAffectedFieldValues: c.ReturnAffectedFieldValues, State: webhookv1.ChannelState(state),
		ExpireTime: timestamppb.New(c.ExpireTime), CreateTime: timestamppb.New(c.CreateTime), UpdateTime: timestamppb.New(c.UpdateTime),
		FailedRenewals: c.FailedRenewals, LastError: c.LastError,
	}
	if !c.RenewTime.IsZero() {
		out.RenewTime = timestamppb.New(c.RenewTime)
	}
	return out
}
