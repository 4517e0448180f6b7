package processtest

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// What a consumer does with a hand-out.
type action int

const (
	doAck  action = iota
	doNack        // give it back, due again after nackDelay
	doHold        // keep it unsettled: its lease ends and it is handed out again
)

// nackDelay is the delay of every Nack: short, so that redeliveries happen within a test.
const nackDelay = 10 * time.Millisecond

// maxMessages bounds the messages one consumer reads from one stream.
const maxMessages = 1_000_000

// consumer reads a Receive stream of sub and settles each message's deliveries (one Nack call, then
// one Ack call) before it reads the next, recording everything in l. Every repeatEvery-th Ack call (and
// every Nack call) is followed by an Ack of one of its ack ids, already settled, which must be refused.
type consumer struct {
	name         string
	sub          string
	recv, settle webhookv1.WebhookServiceClient // Receive on one; Ack and Nack on the other (the same or another replica)
	maxInFlight  int32
	l            *ledger
	decide       func(h *handout) action
	repeatEvery  int

	stream webhookv1.WebhookService_ReceiveClient
	acks   int // Ack calls made
}

// open starts the consumer's stream.
func (c *consumer) open(ctx context.Context) error {
	s, err := c.recv.Receive(ctx, &webhookv1.ReceiveRequest{SubscriptionId: c.sub, Consumer: c.name, MaxInFlight: c.maxInFlight})
	if err != nil {
		return fmt.Errorf("%s: Receive: %w", c.name, err)
	}
	c.stream = s
	return nil
}

// run reads and settles until the stream ends; nil when it ends because ctx did.
func (c *consumer) run(ctx context.Context) error {
	if err := c.open(ctx); err != nil {
		return err
	}
	for range maxMessages {
		if _, err := c.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped by the test
			}
			return err
		}
	}
	return fmt.Errorf("%s read %d messages: raise maxMessages", c.name, maxMessages)
}

// step reads one message and settles its deliveries; it returns how many Acks were answered OK.
func (c *consumer) step(ctx context.Context) (int, error) {
	msg, err := c.stream.Recv()
	if err != nil {
		return 0, fmt.Errorf("%s: Recv: %w", c.name, err)
	}
	now := time.Now()
	var acks, nacks []*handout
	for _, ld := range msg.GetDeliveries() {
		h := c.l.receive(c.name, ld, now)
		switch c.decide(h) {
		case doAck:
			acks = append(acks, h)
		case doNack:
			nacks = append(nacks, h)
		}
	}
	if len(nacks) > 0 {
		c.l.sending(nacks, outNacked, time.Now())
		resp, err := c.settle.Nack(ctx, &webhookv1.NackRequest{AckIds: ackIDs(nacks), Delay: durationpb.New(nackDelay), Error: "processtest: given back"})
		c.l.settled(nacks, outNacked, time.Now(), err, resp.GetRefusedAckIds())
		if err != nil {
			return 0, fmt.Errorf("%s: Nack: %w", c.name, err)
		}
		if err := c.repeat(ctx, nacks[0]); err != nil {
			return 0, err
		}
	}
	if len(acks) == 0 {
		return 0, nil
	}
	c.l.sending(acks, outAcked, time.Now())
	resp, err := c.settle.Ack(ctx, &webhookv1.AckRequest{AckIds: ackIDs(acks)})
	c.l.settled(acks, outAcked, time.Now(), err, resp.GetRefusedAckIds())
	if err != nil {
		return 0, fmt.Errorf("%s: Ack: %w", c.name, err)
	}
	c.acks++
	if c.repeatEvery > 0 && c.acks%c.repeatEvery == 0 {
		if err := c.repeat(ctx, acks[0]); err != nil {
			return 0, err
		}
	}
	return len(acks) - len(resp.GetRefusedAckIds()), nil
}

// repeat acks h again, settled already: it must be refused.
func (c *consumer) repeat(ctx context.Context, h *handout) error {
	resp, err := c.settle.Ack(ctx, &webhookv1.AckRequest{AckIds: []string{h.ackID}})
	if err != nil && ctx.Err() != nil {
		return err // the test is stopping the consumer: no answer to judge
	}
	c.l.repeated(h, err, resp.GetRefusedAckIds())
	if err != nil {
		return fmt.Errorf("%s: Ack repeated: %w", c.name, err)
	}
	return nil
}

func ackIDs(hs []*handout) []string {
	ids := make([]string, len(hs))
	for i, h := range hs {
		ids[i] = h.ackID
	}
	return ids
}
