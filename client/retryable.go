package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// safeMethods can be repeated without changing the outcome: reads, and the settling of a lease (Ack,
// Nack, ExtendLease name it by ack id; repeating one that took effect is answered with the id among
// refused_ack_ids and changes nothing). Poll is not here: a repeated Poll whose first answer was lost
// leases other deliveries while the first ones wait out their lease.
var safeMethods = map[string]bool{
	tokenv1.TokenService_GetAccessToken_FullMethodName:    true,
	tokenv1.TokenService_GetConnection_FullMethodName:     true,
	tokenv1.TokenService_ListConnections_FullMethodName:   true,
	tokenv1.TokenService_ListRefreshEvents_FullMethodName: true,

	auditv1.AuditService_GetEvent_FullMethodName:        true,
	auditv1.AuditService_ListEvents_FullMethodName:      true,
	auditv1.AuditService_VerifyChain_FullMethodName:     true,
	auditv1.AuditService_GetCheckpoint_FullMethodName:   true,
	auditv1.AuditService_ListCheckpoints_FullMethodName: true,
	auditv1.AuditService_GetSigningKey_FullMethodName:   true,

	webhookv1.WebhookService_GetEvent_FullMethodName:          true,
	webhookv1.WebhookService_ListEvents_FullMethodName:        true,
	webhookv1.WebhookService_GetChannel_FullMethodName:        true,
	webhookv1.WebhookService_ListChannels_FullMethodName:      true,
	webhookv1.WebhookService_GetSubscription_FullMethodName:   true,
	webhookv1.WebhookService_ListSubscriptions_FullMethodName: true,
	webhookv1.WebhookService_GetDelivery_FullMethodName:       true,
	webhookv1.WebhookService_ListDeliveries_FullMethodName:    true,
	webhookv1.WebhookService_Ack_FullMethodName:               true,
	webhookv1.WebhookService_Nack_FullMethodName:              true,
	webhookv1.WebhookService_ExtendLease_FullMethodName:       true,

	healthpb.Health_Check_FullMethodName: true,
}

type idempotentKey struct{}

// Idempotent marks the calls made with ctx as safe to repeat: the caller vouches that doing one twice
// does no harm (a call of its own design, or one it checks afterwards). Without it only the methods this
// package knows to be safe are retried.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// Retryable reports whether the call of method with req may be repeated after a retryable error: a
// read, a lease settlement, an audit write whose every event carries an idempotency key (the service
// then answers a repeat with the event stored the first time), or a call made with an Idempotent
// context. Any other call that changes something (a connection created, a subscription deleted, an
// audit event without a key) is made once: its error may hide a success.
func Retryable(ctx context.Context, method string, req any) bool {
	if safeMethods[method] {
		return true
	}
	if v, _ := ctx.Value(idempotentKey{}).(bool); v {
		return true
	}
	switch r := req.(type) {
	case *auditv1.RecordEventRequest:
		return r.GetIdempotencyKey() != ""
	case *auditv1.RecordEventsRequest:
		if len(r.GetEvents()) == 0 {
			return false
		}
		for _, e := range r.GetEvents() {
			if e.GetIdempotencyKey() == "" {
				return false
			}
		}
		return true
	}
	return false
}

// NewIdempotencyKey returns a random key (32 hex digits, 128 bits): unique enough that two different
// events never share one, which the service would answer with the first event (same content) or
// ALREADY_EXISTS (other content).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b[:])
}
