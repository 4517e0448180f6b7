package client_test

import (
	"context"
	"log"
	"os"

	"github.com/sergas/core/client"
	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// An agent's loop: for every webhook delivery, get the CRM access token, act, and record what it did.
// A nil from the handler acknowledges the delivery; an error gives it back to be retried.
func Example() {
	dial := func(addr string) *client.Conn {
		c, err := client.Dial(client.Config{
			Address:  addr,
			CAFile:   "/etc/sergas/ca.pem",                                          // the system roots when empty
			Bearer:   os.Getenv("SERGAS_API_KEY"),                                   // sgk_<id>.<secret> or a JWT
			CertFile: "/etc/sergas/agent.pem", KeyFile: "/etc/sergas/agent-key.pem", // mTLS, when required
		})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	tokens, audit, webhooks := dial("token.sergas:50051"), dial("audit.sergas:50052"), dial("webhook.sergas:50053")
	defer tokens.Close()
	defer audit.Close()
	defer webhooks.Close()

	ctx := context.Background() // cancel it (on SIGTERM) to stop: handlers in flight finish and settle
	err := webhooks.Consume(ctx, "01a217db-f956-723d-8815-21ff7f6ed879", func(ctx context.Context, d *webhookv1.LeasedDelivery) error {
		tok, err := tokens.AccessToken(ctx, "zoho", "org-1")
		if err != nil {
			return err
		}
		_ = tok.GetAccessToken() // call the CRM with it …
		_, err = audit.RecordEvent(ctx, &auditv1.RecordEventRequest{
			Actor: "agent-7", Action: "crm.deal.update", Resource: "Deals/42", Outcome: auditv1.Outcome_OUTCOME_SUCCESS,
			// Same key for the same delivery: a redelivered webhook is not recorded twice.
			IdempotencyKey: "webhook-delivery-" + d.GetDelivery().GetId() + "-" + d.GetDelivery().GetEventId(),
		})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}
