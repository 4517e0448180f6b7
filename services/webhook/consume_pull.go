package webhook

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// Size bounds of what one claim loads and one message carries. A claim loads each event with its
// payload, and what is leased cannot be given back without spending an attempt, so the number claimed
// at once is bounded by what the largest events could weigh, not by what they usually do.
const (
	// maxMessageBytes keeps every Receive message and Poll answer under gRPC's default 4 MiB receive
	// limit of clients, with room for framing.
	maxMessageBytes = 3 << 20
	// maxClaimBytes bounds what one Receive claim may load.
	maxClaimBytes = 32 << 20
	// maxClaim is the most deliveries one claim asks for.
	maxClaim = 100
	// headerAllowance is what an event's headers and fields may add to its body.
	headerAllowance = 64 << 10
	// pollAnswerMargin is how long before the caller's deadline a Poll stops waiting, so that its answer
	// (and the deliveries it leased) arrives in time.
	pollAnswerMargin = 500 * time.Millisecond
)

// claimLimit is how many deliveries may be claimed at once so that they weigh at most budget.
func (s *Server) claimLimit(want int, budget int) int {
	per := s.cfg.MaxBodyBytes + headerAllowance
	return max(1, min(want, maxClaim, budget/per))
}

// deliveryStore is the store's delivery half, or FailedPrecondition on a store without one.
func (s *Server) deliveryStore() (store.DeliveryStore, error) {
	if s.deliveries == nil {
		return nil, errs.New(errs.KindFailedPrecondition, "deliveries are not available: the webhook store does not keep them")
	}
	return s.deliveries, nil
}

// consumable checks a subscription id and that the subscription exists and is pulled (a push
// subscription's deliveries are the push workers').
func (s *Server) consumable(ctx context.Context, id string) (store.DeliveryStore, string, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, "", err
	}
	id, err = validate.UUID("subscription_id", id)
	if err != nil {
		return nil, "", err
	}
	sub, err := ds.SubscriptionGet(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if err := refusePush(sub); err != nil {
		return nil, "", err
	}
	return ds, id, nil
}

// claim leases up to limit deliveries of sub to consumer, counting retries and the dead letters the
// claim made of expired leases.
func (s *Server) claim(ctx context.Context, ds store.DeliveryStore, sub, consumer string, limit int) ([]*webhookv1.LeasedDelivery, error) {
	claim, err := ds.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: sub, Consumer: consumer, Now: s.now(), Limit: limit})
	cs := claim.Claimed
	if err != nil {
		return nil, err
	}
	observeClaimed(cs)
	observeDeadLettered(claim.DeadLettered)
	out := make([]*webhookv1.LeasedDelivery, 0, len(cs))
	for _, c := range cs {
		out = append(out, &webhookv1.LeasedDelivery{
			AckId:    encodeAckID(c.Delivery.SubscriptionID, c.Delivery.ID, c.Delivery.Lease),
			Delivery: deliveryProto(c.Delivery, nil),
			Event:    s.toProto(c.Event),
		})
	}
	return out, nil
}

// Poll implements webhookv1.WebhookServiceServer: it claims at once, and while nothing was claimed and
// the wait lasts, again at each wake-up (new events, settled deliveries) or poll interval.
func (s *Server) Poll(ctx context.Context, req *webhookv1.PollRequest) (*webhookv1.PollResponse, error) {
	consumer, err := consumerName(req.GetConsumer())
	if err != nil {
		return nil, err
	}
	want, err := countIn("max_deliveries", req.GetMaxDeliveries(), defaultMaxInFlight, maxInFlightLimit)
	if err != nil {
		return nil, err
	}
	wait, _, err := optionalDuration("wait", req.GetWait(), 0, maxPollWait)
	if err != nil {
		return nil, err
	}
	ds, sub, err := s.consumable(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	end := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-pollAnswerMargin).Before(end) {
		end = dl.Add(-pollAnswerMargin)
	}
	st := s.consume()
	stopping := grpcserver.Stopping(ctx)
	resp := &webhookv1.PollResponse{}
	size := 0
	// Each pass claims or waits; waits end by end, so the loop is bounded by wait.
	for {
		woken, subWoken := st.wake.wait(), st.subWake(sub).wait()
		got, err := s.claim(ctx, ds, sub, consumer, s.claimLimit(want-len(resp.Deliveries), maxMessageBytes-size))
		if err != nil {
			if len(resp.Deliveries) > 0 {
				// They are leased: hand them over; the next Poll sees the error.
				return resp, nil
			}
			return nil, err
		}
		for _, d := range got {
			size += proto.Size(d)
		}
		resp.Deliveries = append(resp.Deliveries, got...)
		switch {
		case len(got) > 0 && len(resp.Deliveries) < want && size+s.cfg.MaxBodyBytes+headerAllowance <= maxMessageBytes:
			continue // more may be waiting and fit
		case len(resp.Deliveries) > 0:
			return resp, nil
		}
		left := time.Until(end)
		if left <= 0 {
			return resp, nil
		}
		switch st.sleep(ctx, woken, subWoken, stopping, min(left, time.Duration(st.pollInterval.Load()))) {
		case sleepCancelled:
			return nil, ctx.Err()
		case sleepStopping:
			// The server is stopping: answer (nothing) now rather than hold the graceful stop; the
			// client polls again, reaching another replica or this one restarted.
			return resp, nil
		}
	}
}

// How a sleep ended.
const (
	sleepWoken     = iota // a wake-up
	sleepTimedOut         // the time passed
	sleepCancelled        // ctx ended
	sleepStopping         // the server began to stop
)

// sleep waits for a wake-up (woken: any subscription's news; subWoken: the consumer's subscription's),
// the server's stop (stopping; nil for none) or d.
func (st *consumeState) sleep(ctx context.Context, woken, subWoken, stopping <-chan struct{}, d time.Duration) int {
	st.waiting.Add(1)
	defer st.waiting.Add(-1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return sleepCancelled
	case <-stopping:
		return sleepStopping
	case <-woken:
	case <-subWoken:
	case <-t.C:
		return sleepTimedOut
	}
	return sleepWoken
}

// Receive implements webhookv1.WebhookServiceServer. It keeps up to max_in_flight deliveries leased to
// the consumer: it tops up what the store counts in flight, sends, and waits for a wake-up or the poll
// interval. When the server stops, the stream's context ends (internal/grpcserver) and no more is
// claimed; what was sent stays leased to the consumer and is handed out again when its lease ends if
// the consumer does not settle it.
//
// The streams of one subscription on this replica claim one at a time and skip what another already
// looked at (subState); a stream claims again at once only after a claim that got all it asked for.
func (s *Server) Receive(req *webhookv1.ReceiveRequest, stream grpc.ServerStreamingServer[webhookv1.ReceiveResponse]) error {
	ctx := stream.Context()
	consumer, err := consumerName(req.GetConsumer())
	if err != nil {
		return err
	}
	maxInFlight, err := countIn("max_in_flight", req.GetMaxInFlight(), defaultMaxInFlight, maxInFlightLimit)
	if err != nil {
		return err
	}
	ds, sub, err := s.consumable(ctx, req.GetSubscriptionId())
	if err != nil {
		return err
	}
	st := s.consume()
	ss := st.sub(sub)
	defer ss.join(consumer)()
	// An empty message at once and after every heartbeat interval without one: over REST, grpc-gateway
	// writes the status and headers only with the first message, and an HTTP client or proxy with a
	// response-header or idle timeout would cut an idle consumer.
	heartbeat := time.Duration(st.heartbeat.Load())
	if err := stream.Send(&webhookv1.ReceiveResponse{}); err != nil {
		return err
	}
	lastSend := time.Now()
	rs := receiveState{look: true} // the first pass claims
	for {
		woken, subWoken := st.wake.wait(), ss.wait()
		if err := ctx.Err(); err != nil {
			return err // stopping or cancelled: nothing more is claimed
		}
		if time.Since(lastSend) >= heartbeat {
			if err := stream.Send(&webhookv1.ReceiveResponse{}); err != nil {
				return err
			}
			lastSend = time.Now()
		}
		got, again, err := s.topUp(ctx, ds, st, ss, sub, consumer, maxInFlight, &rs)
		if err != nil {
			return err
		}
		if err := sendBatches(stream, got); err != nil {
			return err
		}
		if len(got) > 0 {
			lastSend = time.Now()
		}
		if again {
			rs.look = true
			continue // the claim got all it asked for and there is room: more may be waiting
		}
		nap := min(time.Duration(st.pollInterval.Load()), max(heartbeat-time.Since(lastSend), 0))
		switch st.sleep(ctx, woken, subWoken, nil, nap) {
		case sleepWoken:
			rs.look = false
		case sleepTimedOut:
			rs.look = true // what no wake-up announces: other replicas, retries come due, expired leases
		default:
			return ctx.Err()
		}
	}
}

// receiveState is what a Receive stream remembers between its claims.
type receiveState struct {
	// look makes the next pass claim whatever the news (first pass, poll interval, after a full claim).
	look bool
	// full is set when the consumer's budget was used up at the last claim: it claims again when a
	// settle here frees room (freed moves past seenFreed) or at its poll interval.
	full      bool
	seenFreed uint64
	// seenOwn is the subscription's own news generation at the last claim.
	seenOwn uint64
}

// topUp claims for one Receive stream of consumer, unless nothing it has not looked at could be there:
// no news since a claim found the subscription drained, a claim begun after that news still running,
// or no room freed since its budget was full. It reports whether to claim again at once.
func (s *Server) topUp(ctx context.Context, ds store.DeliveryStore, st *consumeState, ss *subState, sub, consumer string,
	maxInFlight int, rs *receiveState) ([]*webhookv1.LeasedDelivery, bool, error) {
	// Read before the claim: news after this point wakes the stream again.
	own, freed := ss.generation(), ss.freed(consumer)
	work := st.wake.generation() + own // both only grow, so their sum does too
	roomFreed := freed != rs.seenFreed
	// A consumer whose budget was full looks when room was freed for it, whatever the other streams
	// found: they may have left deliveries for want of room. Otherwise it waits for room unless the
	// subscription itself has news (a nack, a redrive, a pause or deletion: the claim reports a
	// deleted subscription).
	if !ss.begin(work, rs.look || (rs.full && roomFreed), rs.full && !roomFreed && own == rs.seenOwn) {
		return nil, false, nil
	}
	rs.seenFreed, rs.seenOwn = freed, own
	got, limit, room, err := s.lookup(ctx, ds, st, sub, consumer, maxInFlight)
	switch {
	case err != nil:
		ss.end(work, claimFailed)
		return nil, false, err
	case limit == 0:
		ss.end(work, claimNoRoom)
	case len(got) < limit:
		ss.end(work, claimDrained)
	default:
		ss.end(work, claimFull)
	}
	rs.full = len(got) == room
	return got, len(got) == limit && !rs.full, nil
}

// lookup counts consumer's deliveries in flight and claims what its budget leaves room for, up to the
// claim's limit; it returns them with the limit and the room (limit 0: no room).
func (s *Server) lookup(ctx context.Context, ds store.DeliveryStore, st *consumeState, sub, consumer string, maxInFlight int) (
	got []*webhookv1.LeasedDelivery, limit, room int, err error) {
	st.lookups.Add(1)
	inFlight, err := ds.DeliveryInFlight(ctx, sub, consumer, s.now())
	if err != nil {
		return nil, 0, 0, err
	}
	if room = maxInFlight - inFlight; room <= 0 {
		return nil, 0, 0, nil
	}
	limit = s.claimLimit(room, maxClaimBytes)
	got, err = s.claim(ctx, ds, sub, consumer, limit)
	return got, limit, room, err
}

// sendBatches sends ds in messages of at most maxMessageBytes (one delivery alone may be larger).
func sendBatches(stream grpc.ServerStreamingServer[webhookv1.ReceiveResponse], ds []*webhookv1.LeasedDelivery) error {
	msg := &webhookv1.ReceiveResponse{}
	size := 0
	for _, d := range ds {
		n := proto.Size(d)
		if len(msg.Deliveries) > 0 && size+n > maxMessageBytes {
			if err := stream.Send(msg); err != nil {
				return err
			}
			msg, size = &webhookv1.ReceiveResponse{}, 0
		}
		msg.Deliveries = append(msg.Deliveries, d)
		size += n
	}
	if len(msg.Deliveries) == 0 {
		return nil
	}
	return stream.Send(msg)
}
