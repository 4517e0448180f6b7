package webhook

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
)

// Every consumer request field is checked before anything is leased or settled: malformed values are
// INVALID_ARGUMENT on both backends alike, never a database error; a well-formed ack id naming no
// lease is refused by name, and an unknown subscription is NOT_FOUND.
func TestConsumeRequestsChecked(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5})
		r.ingest(t)
		held := r.pollOne(t, "holder")
		sub := r.sub.GetId()
		good := held.GetAckId()
		many := make([]string, 10_000)
		for i := range many {
			many[i] = good
		}
		ctx := t.Context()
		c := r.client
		calls := map[string]func() error{
			"poll: subscription not a UUID": func() error { _, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: "agents"}); return err },
			"poll: no subscription":         func() error { _, err := c.Poll(ctx, &webhookv1.PollRequest{}); return err },
			"poll: consumer with NUL": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, Consumer: "a\x00b"})
				return err
			},
			"poll: consumer too long": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, Consumer: strings.Repeat("c", 129)})
				return err
			},
			"poll: consumer not ASCII": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, Consumer: "agent\u202e"})
				return err
			},
			"poll: max_deliveries negative": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, MaxDeliveries: -1})
				return err
			},
			"poll: max_deliveries 1001": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, MaxDeliveries: 1001})
				return err
			},
			"poll: wait 31 s": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, Wait: durationpb.New(31 * time.Second)})
				return err
			},
			"poll: wait negative": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, Wait: durationpb.New(-time.Second)})
				return err
			},
			"poll: wait not a duration": func() error {
				_, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, Wait: &durationpb.Duration{Seconds: 1, Nanos: -5}})
				return err
			},
			"receive: max_in_flight 1001": func() error {
				return recvErr(c.Receive(ctx, &webhookv1.ReceiveRequest{SubscriptionId: sub, MaxInFlight: 1001}))
			},
			"receive: consumer control char": func() error {
				return recvErr(c.Receive(ctx, &webhookv1.ReceiveRequest{SubscriptionId: sub, Consumer: "a\tb"}))
			},
			"receive: subscription garbage": func() error { return recvErr(c.Receive(ctx, &webhookv1.ReceiveRequest{SubscriptionId: "../etc"})) },
			"ack: none":                     func() error { _, err := c.Ack(ctx, &webhookv1.AckRequest{}); return err },
			"ack: 10k ack ids":              func() error { _, err := c.Ack(ctx, &webhookv1.AckRequest{AckIds: many}); return err },
			"ack: garbage":                  func() error { _, err := c.Ack(ctx, &webhookv1.AckRequest{AckIds: []string{"garbage!"}}); return err },
			"ack: garbage after a good one": func() error { _, err := c.Ack(ctx, &webhookv1.AckRequest{AckIds: []string{good, "AAAA"}}); return err },
			"ack: NUL": func() error {
				_, err := c.Ack(ctx, &webhookv1.AckRequest{AckIds: []string{good[:4] + "\x00" + good[5:]}})
				return err
			},
			"ack: huge id": func() error {
				_, err := c.Ack(ctx, &webhookv1.AckRequest{AckIds: []string{strings.Repeat("A", 1<<20)}})
				return err
			},
			"nack: error too long": func() error {
				_, err := c.Nack(ctx, &webhookv1.NackRequest{AckIds: []string{good}, Error: strings.Repeat("e", 1001)})
				return err
			},
			"nack: error with NUL": func() error {
				_, err := c.Nack(ctx, &webhookv1.NackRequest{AckIds: []string{good}, Error: "a\x00"})
				return err
			},
			"nack: delay 25 h": func() error {
				_, err := c.Nack(ctx, &webhookv1.NackRequest{AckIds: []string{good}, Delay: durationpb.New(25 * time.Hour)})
				return err
			},
			"nack: delay negative": func() error {
				_, err := c.Nack(ctx, &webhookv1.NackRequest{AckIds: []string{good}, Delay: durationpb.New(-time.Second)})
				return err
			},
			"extend: lease 500 ms": func() error {
				_, err := c.ExtendLease(ctx, &webhookv1.ExtendLeaseRequest{AckIds: []string{good}, LeaseDuration: durationpb.New(500 * time.Millisecond)})
				return err
			},
			"extend: lease 13 h": func() error {
				_, err := c.ExtendLease(ctx, &webhookv1.ExtendLeaseRequest{AckIds: []string{good}, LeaseDuration: durationpb.New(13 * time.Hour)})
				return err
			},
			"extend: 1001 ack ids": func() error {
				_, err := c.ExtendLease(ctx, &webhookv1.ExtendLeaseRequest{AckIds: many[:1001]})
				return err
			},
			"get: empty":        func() error { _, err := c.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{}); return err },
			"get: leading zero": func() error { _, err := c.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: "01"}); return err },
			"get: sign":         func() error { _, err := c.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: "+1"}); return err },
			"get: negative":     func() error { _, err := c.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: "-1"}); return err },
			"get: beyond int64": func() error {
				_, err := c.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: "9223372036854775808"})
				return err
			},
			"get: not a number": func() error { _, err := c.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: "1e3"}); return err },
			"list: status unknown": func() error {
				_, err := c.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{Status: 99})
				return err
			},
			"list: subscription garbage": func() error {
				_, err := c.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{SubscriptionId: "x"})
				return err
			},
			"list: event garbage": func() error {
				_, err := c.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{EventId: "x\x00"})
				return err
			},
			"list: page size 1001": func() error {
				_, err := c.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{PageSize: 1001})
				return err
			},
			"list: page token garbage": func() error {
				_, err := c.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{PageToken: "nope"})
				return err
			},
			"redrive: no subscription": func() error { _, err := c.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{}); return err },
			"redrive: source not a name": func() error {
				_, err := c.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{SubscriptionId: sub, Source: "A B"})
				return err
			},
			"redrive: error with NUL": func() error {
				_, err := c.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{SubscriptionId: sub, ErrorContains: "\x00"})
				return err
			},
			"redrive: error too long": func() error {
				_, err := c.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{SubscriptionId: sub, ErrorContains: strings.Repeat("x", 1001)})
				return err
			},
			"redrive: empty range": func() error {
				now := timestamppb.New(r.clock.now())
				_, err := c.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{SubscriptionId: sub, StartTime: now, EndTime: now})
				return err
			},
			"redrive: bad time": func() error {
				_, err := c.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{SubscriptionId: sub, StartTime: &timestamppb.Timestamp{Seconds: 1 << 62}})
				return err
			},
		}
		for name, call := range calls {
			if err := call(); status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
		}

		// Invalid UTF-8 never passes gRPC's decoding of a string field; the handlers refuse it too, for any
		// other way in.
		for name, call := range map[string]func() error{
			"ack": func() error {
				_, err := r.srv.Ack(ctx, &webhookv1.AckRequest{AckIds: []string{good[:4] + "\xff" + good[5:]}})
				return err
			},
			"nack": func() error {
				_, err := r.srv.Nack(ctx, &webhookv1.NackRequest{AckIds: []string{good}, Error: "bad \xff"})
				return err
			},
			"poll": func() error {
				_, err := r.srv.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: sub, Consumer: "\xff"})
				return err
			},
			"redrive": func() error {
				_, err := r.srv.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{SubscriptionId: sub, ErrorContains: "\xc3"})
				return err
			},
		} {
			if err := call(); errs.KindOf(err) != errs.KindInvalid {
				t.Errorf("invalid UTF-8 in %s: %v, want InvalidArgument", name, err)
			}
		}

		// None of it settled the delivery held: it is still leased to its consumer.
		if got := r.get(t, held.GetDelivery().GetId()); got.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_LEASED || got.GetConsumer() != "holder" {
			t.Fatalf("after the refused calls: %v", got)
		}

		// Well formed but naming nothing: refused by name (a forged lease number or delivery id), not an
		// error; unknown subscriptions and deliveries are NOT_FOUND.
		forged := []string{encodeAckID(sub, 1<<40, 1), encodeAckID(sub, mustID(t, held), 7), encodeAckID("0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d", 1<<40, 1)}
		if refused := r.ack(t, forged...); len(refused) != 3 {
			t.Fatalf("forged ack ids: refused %v", refused)
		}
		ext, err := c.ExtendLease(ctx, &webhookv1.ExtendLeaseRequest{AckIds: forged})
		if err != nil || len(ext.GetRefusedAckIds()) != 3 {
			t.Fatalf("forged extension: %v %v", ext, err)
		}
		unknown := "0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d"
		for name, call := range map[string]func() error{
			"poll":    func() error { _, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: unknown}); return err },
			"receive": func() error { return recvErr(c.Receive(ctx, &webhookv1.ReceiveRequest{SubscriptionId: unknown})) },
			"get": func() error {
				_, err := c.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: "9223372036854775807"})
				return err
			},
			"redrive": func() error {
				_, err := c.RedriveDeliveries(ctx, &webhookv1.RedriveDeliveriesRequest{SubscriptionId: unknown})
				return err
			},
		} {
			if err := call(); status.Code(err) != codes.NotFound {
				t.Errorf("%s: %v, want NotFound", name, err)
			}
		}
		// An upper-case subscription id names the same subscription on both backends.
		if _, err := c.Poll(ctx, &webhookv1.PollRequest{SubscriptionId: strings.ToUpper(sub)}); err != nil {
			t.Errorf("upper-case subscription id: %v", err)
		}
	})
}

// recvErr is the error a stream ends with (nil if it delivers instead).
func recvErr[T any](s interface{ Recv() (T, error) }, err error) error {
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

func mustID(t *testing.T, ld *webhookv1.LeasedDelivery) int64 {
	t.Helper()
	id, err := deliveryID("id", ld.GetDelivery().GetId())
	if err != nil {
		t.Fatal(err)
	}
	return id
}
