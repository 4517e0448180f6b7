package sergasctl

import (
	"context"
	"fmt"
	"net/url"
	"time"

	webhookstore "github.com/sergas/core/services/webhook/store"
)

// backlogOld is the age of a subscription's oldest undelivered event from which health explains its
// backlog; maxExplained bounds the subscriptions explained (two indexed reads each).
const (
	backlogOld   = time.Minute
	maxExplained = 50
)

// explainBacklog reads the oldest delivery sub still owes (a failed one first: it carries the last
// error; else a leased one: it names the consumer holding it; else a pending one) and says in o.Advice
// why the backlog is there and what to do.
func explainBacklog(ctx context.Context, st webhookstore.Store, sub *webhookstore.Subscription, o *backlogOfHealth) error {
	var oldest *webhookstore.Delivery
	for _, status := range []webhookstore.DeliveryStatus{webhookstore.DeliveryFailed, webhookstore.DeliveryLeased, webhookstore.DeliveryPending} {
		ds, err := st.DeliveryList(ctx, webhookstore.DeliveryListParams{SubscriptionID: sub.ID, Status: status, Limit: 1})
		if err != nil {
			return fmt.Errorf("read the oldest delivery of subscription %s: %w", sub.ID, err)
		}
		if len(ds) > 0 {
			oldest = ds[0]
			break
		}
	}
	if oldest != nil {
		o.Attempts, o.LastConsumer, o.LastError = oldest.AttemptCount, oldest.Consumer, oldest.LastError
	}
	waiting := o.Pending + o.Leased + o.Failed
	what := fmt.Sprintf("subscription %s (%s, %s): %d deliveries waiting, the oldest for %s", sub.Name, sub.ID, o.Mode, waiting,
		(time.Duration(o.OldestAge) * time.Second).Round(time.Second))
	var why string
	switch {
	case waiting == 0:
		why = "nothing waits"
	case sub.State == webhookstore.SubscriptionPaused:
		why = "it is paused, so nothing is handed out: ResumeSubscription when its consumer is ready, or DeleteSubscription if nobody needs it"
	case sub.Mode == webhookstore.SubscriptionPush && o.Failed > 0:
		why = fmt.Sprintf("its endpoint %s fails: attempt %d ended with %q. Make the endpoint answer 2xx within its timeout; failed deliveries are retried with backoff on their own",
			endpointOf(sub), o.Attempts, o.LastError)
	case sub.Mode == webhookstore.SubscriptionPush:
		why = "no push attempt has ended yet: check that the webhook service runs (on PostgreSQL, that one replica holds the leader lock) and that its log shows no push worker errors"
	case o.Failed > 0:
		why = fmt.Sprintf("its consumers nack deliveries or let their leases expire: attempt %d by consumer %q ended with %q. Fix the consumer; failed deliveries are retried with backoff",
			o.Attempts, o.LastConsumer, o.LastError)
	case o.Leased > 0:
		why = fmt.Sprintf("consumer %q holds deliveries but the backlog still ages: consumers take deliveries slower than events arrive; run more consumers or raise their max outstanding", o.LastConsumer)
	default:
		why = "no consumer has taken any of its deliveries: no consumer is connected (Receive or Poll on this subscription). Start its consumer, or pause or delete the subscription"
	}
	o.Advice = what + "; " + why
	if o.DeadLetter > 0 {
		o.Advice += fmt.Sprintf(". %d dead letter(s): RedriveDeliveries once the cause is fixed", o.DeadLetter)
	}
	return nil
}

// endpointOf is a push endpoint without its query, fragment or user information, which may carry
// credentials.
func endpointOf(sub *webhookstore.Subscription) string {
	if sub.Push == nil {
		return ""
	}
	u, err := url.Parse(sub.Push.Endpoint)
	if err != nil {
		return "(unparsable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

func modeName(m webhookstore.SubscriptionMode) string {
	if m == webhookstore.SubscriptionPush {
		return "push"
	}
	return "pull"
}

func stateName(s webhookstore.SubscriptionState) string {
	if s == webhookstore.SubscriptionPaused {
		return "paused"
	}
	return "active"
}
