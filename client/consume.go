package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// Handler processes one leased delivery. Returning nil acknowledges it; an error gives it back (Nack),
// to be retried by the subscription's retry policy and dead-lettered once out of attempts. ctx ends when
// the consumer stops or the lease is lost (another consumer may then have the delivery).
type Handler func(ctx context.Context, d *webhookv1.LeasedDelivery) error

// Consumer receives a pull subscription's deliveries and hands each to Handler.
type Consumer struct {
	// Subscription is the subscription's id (webhook:consume).
	Subscription string
	// Name names this consumer in leases and attempt history (1-128 printable ASCII characters). It
	// stays the same across reconnections; a random "go-…" name when empty.
	Name string
	// MaxInFlight bounds the deliveries leased to this consumer and handled at once (1-1000); 10 when 0.
	MaxInFlight int
	// NackDelay, when set, chooses the delay before a refused delivery is retried (0: the
	// subscription's backoff).
	NackDelay func(d *webhookv1.LeasedDelivery, err error) time.Duration
	// GiveUpAfter is how long Run keeps reconnecting without getting a stream open before it returns
	// the last error; 5 minutes when 0.
	GiveUpAfter time.Duration
	// OnError, when set, is told of what Run survives: a reconnection, an ack or nack that failed or was
	// refused (the lease had passed on), a lease that could not be extended. It is called from the
	// handlers' goroutines too, possibly at once.
	OnError func(error)
	// Handler processes each delivery.
	Handler Handler
}

// Consume runs a Consumer of subscription with the defaults; see Consumer.Run.
func (c *Conn) Consume(ctx context.Context, subscription string, handler Handler) error {
	return (&Consumer{Subscription: subscription, Handler: handler}).Run(ctx, c)
}

// stableStream is how long a stream must have lasted for the reconnection backoff to start again from
// its first step.
const stableStream = 10 * time.Second

// settleTimeout bounds an ack or nack (made even after ctx ended: the consumer stopping with handlers in
// flight).
const settleTimeout = 10 * time.Second

// Run receives deliveries over a Receive stream and handles up to MaxInFlight of them at once, each in
// its own goroutine: a handler's nil acknowledges the delivery, an error (or a panic) refuses it. While a
// handler runs, its lease is extended every half lease. A stream that ends with UNAVAILABLE (the service
// stopping or restarting, the connection broken) or with RESOURCE_EXHAUSTED and a RetryInfo is opened
// again after a backoff (the policy's, not counting attempts); any other error ends Run with it. When
// ctx ends, Run stops receiving, waits for the handlers in flight, settles what they returned, and
// returns nil.
func (cs *Consumer) Run(ctx context.Context, conn *Conn) error {
	if cs.Handler == nil || cs.Subscription == "" {
		return errors.New("client: Consumer needs a Subscription and a Handler")
	}
	name := cs.Name
	if name == "" {
		name = "go-" + NewIdempotencyKey()[:12]
	}
	inFlight := cs.MaxInFlight
	if inFlight <= 0 {
		inFlight = 10
	}
	giveUp := cs.GiveUpAfter
	if giveUp <= 0 {
		giveUp = 5 * time.Minute
	}
	r := &consumeRun{cs: cs, api: conn.Webhook(), sem: make(chan struct{}, inFlight)}
	defer r.wg.Wait()
	policy := conn.retry
	req := &webhookv1.ReceiveRequest{SubscriptionId: cs.Subscription, Consumer: name, MaxInFlight: int32(inFlight)}
	failedSince, attempt := time.Time{}, 0
	for {
		began := time.Now()
		opened, err := r.receive(ctx, req)
		if ctx.Err() != nil {
			return nil
		}
		if opened { // the service is there: the give-up clock starts again
			failedSince = time.Time{}
			if time.Since(began) >= stableStream { // a stream that fails as soon as it opens keeps backing off
				attempt = 0
			}
		}
		if failedSince.IsZero() {
			failedSince = time.Now()
		}
		attempt++
		wait, ok := policy.retryDelay(err, attempt, rand.Int64N)
		// Compared without adding to wait, which may be the largest Duration (a RetryInfo): a sum would wrap.
		if !ok || wait > giveUp-time.Since(failedSince) {
			return err
		}
		r.report(fmt.Errorf("client: Receive of subscription %s ended (%w); reconnecting in %s", cs.Subscription, err, wait.Round(time.Millisecond)))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// consumeRun is the state of one Run.
type consumeRun struct {
	cs  *Consumer
	api webhookv1.WebhookServiceClient
	sem chan struct{} // one token per delivery being handled
	wg  sync.WaitGroup
}

func (r *consumeRun) report(err error) {
	if r.cs.OnError != nil {
		r.cs.OnError(err)
	}
}

// receive reads one stream until it fails; opened says whether the service answered (its first message,
// a heartbeat, comes as soon as the stream opens), which resets the reconnection backoff.
func (r *consumeRun) receive(ctx context.Context, req *webhookv1.ReceiveRequest) (opened bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := r.api.Receive(sctx, req)
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) { // the service ended the stream without an error: open another
			return opened, status.Error(codes.Unavailable, "the service ended the Receive stream")
		}
		if err != nil {
			return opened, err
		}
		opened = true
		ds := msg.GetDeliveries()
		for i, d := range ds {
			select { // the service leases at most MaxInFlight; this holds a re-leased extra back
			case r.sem <- struct{}{}:
			case <-ctx.Done():
				r.giveBack(ctx, ds[i:])
				return opened, ctx.Err()
			}
			r.wg.Add(1)
			go r.handle(ctx, d)
		}
	}
}

// giveBack refuses deliveries received but never handled (the consumer stopping), so that another
// consumer gets them now rather than when their lease ends.
func (r *consumeRun) giveBack(ctx context.Context, ds []*webhookv1.LeasedDelivery) {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.GetAckId()
	}
	sctx, done := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer done()
	if _, err := r.api.Nack(sctx, &webhookv1.NackRequest{AckIds: ids, Error: "consumer stopped before handling it"}); err != nil {
		r.report(fmt.Errorf("client: giving back %d unhandled deliveries: %w", len(ids), err))
	}
}

// handle runs the handler on d with its lease kept alive, then acknowledges or refuses it.
func (r *consumeRun) handle(ctx context.Context, d *webhookv1.LeasedDelivery) {
	defer func() { <-r.sem; r.wg.Done() }()
	hctx, cancel := context.WithCancel(ctx)
	stopExtending := r.keepLease(hctx, cancel, d)
	err := r.call(hctx, d)
	stopExtending()
	cancel()

	// Settled even when the consumer is stopping (ctx ended, or ends during the call), so that the
	// delivery does not wait out its lease; bounded instead.
	sctx, done := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer done()
	var refused []string
	var serr error
	if err == nil {
		var resp *webhookv1.AckResponse
		resp, serr = r.api.Ack(sctx, &webhookv1.AckRequest{AckIds: []string{d.GetAckId()}})
		refused = resp.GetRefusedAckIds()
	} else {
		req := &webhookv1.NackRequest{AckIds: []string{d.GetAckId()}, Error: nackError(err)}
		if r.cs.NackDelay != nil {
			if delay := r.cs.NackDelay(d, err); delay > 0 {
				req.Delay = durationpb.New(min(delay, 24*time.Hour))
			}
		}
		var resp *webhookv1.NackResponse
		resp, serr = r.api.Nack(sctx, req)
		refused = resp.GetRefusedAckIds()
	}
	verb := map[bool]string{true: "ack", false: "nack"}[err == nil]
	switch {
	case serr != nil:
		r.report(fmt.Errorf("client: %s of delivery %s failed (it is handed out again when its lease ends): %w", verb, d.GetDelivery().GetId(), serr))
	case len(refused) > 0:
		r.report(fmt.Errorf("client: %s of delivery %s refused: its lease had ended and passed on", verb, d.GetDelivery().GetId()))
	}
}

// call runs the handler, turning a panic into an error so that the delivery is refused, not lost in a
// crashed consumer.
func (r *consumeRun) call(ctx context.Context, d *webhookv1.LeasedDelivery) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return r.cs.Handler(ctx, d)
}

// keepLease extends d's lease every half lease until stop is called. A refused extension means the
// lease has ended and passed on: lost cancels the handler's context.
func (r *consumeRun) keepLease(ctx context.Context, lost context.CancelFunc, d *webhookv1.LeasedDelivery) (stop func()) {
	exp := d.GetDelivery().GetLeaseExpireTime()
	if exp == nil {
		return func() {}
	}
	period := max(time.Until(exp.AsTime())/2, 500*time.Millisecond)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			resp, err := r.api.ExtendLease(ctx, &webhookv1.ExtendLeaseRequest{AckIds: []string{d.GetAckId()}})
			switch {
			case err != nil && status.Code(err) != codes.Canceled:
				r.report(fmt.Errorf("client: extending the lease of delivery %s: %w", d.GetDelivery().GetId(), err))
			case slices.Contains(resp.GetRefusedAckIds(), d.GetAckId()):
				r.report(fmt.Errorf("client: the lease of delivery %s ended while its handler ran", d.GetDelivery().GetId()))
				lost()
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// nackError is the handler's error as the service accepts it: valid UTF-8 without NUL, at most 1,000
// bytes (cut at a character boundary).
func nackError(err error) string {
	s := strings.ReplaceAll(strings.ToValidUTF8(err.Error(), "?"), "\x00", "?")
	const maxLen = 1000
	if len(s) <= maxLen {
		return s
	}
	cut := maxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
