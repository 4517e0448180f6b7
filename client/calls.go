package client

import (
	"context"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
)

// AccessToken returns a valid access token of the connection (TokenService.GetAccessToken, token:read).
// The service refreshes it first when it is about to expire; a read, so it is retried when safe.
func (c *Conn) AccessToken(ctx context.Context, provider, connectionID string) (*tokenv1.GetAccessTokenResponse, error) {
	return c.Token().GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: provider, ConnectionId: connectionID})
}

// RecordEvent appends one audit event (AuditService.RecordEvent, audit:write). An event without an
// idempotency key gets a fresh one (in a copy: ev is not changed), which the retries share, so that an
// attempt whose answer was lost is answered, on the next attempt, with the event it stored: the event is
// recorded once. The key used is in the answer's event.
func (c *Conn) RecordEvent(ctx context.Context, ev *auditv1.RecordEventRequest) (*auditv1.RecordEventResponse, error) {
	return c.Audit().RecordEvent(ctx, withKey(ev))
}

// RecordEvents appends 1 to 1,000 events in one transaction, all or nothing (AuditService.RecordEvents),
// giving each event without an idempotency key a fresh one as RecordEvent does.
func (c *Conn) RecordEvents(ctx context.Context, evs []*auditv1.RecordEventRequest) (*auditv1.RecordEventsResponse, error) {
	req := &auditv1.RecordEventsRequest{Events: make([]*auditv1.RecordEventRequest, len(evs))}
	for i, ev := range evs {
		req.Events[i] = withKey(ev)
	}
	return c.Audit().RecordEvents(ctx, req)
}

// withKey returns ev, or a copy of it with a new idempotency key when it has none.
func withKey(ev *auditv1.RecordEventRequest) *auditv1.RecordEventRequest {
	if ev == nil || ev.GetIdempotencyKey() != "" {
		return ev
	}
	cp := proto.Clone(ev).(*auditv1.RecordEventRequest)
	cp.IdempotencyKey = NewIdempotencyKey()
	return cp
}
