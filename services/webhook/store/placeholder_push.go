package store

import (
	"context"
	"time"

	"github.com/sergas/core/internal/errs"
)

// Placeholders until the push store and backlog gauges land (issue #10, this session).

// SubscriptionRotateSecret implements DeliveryStore.
func (s Deliveries) SubscriptionRotateSecret(context.Context, string, []byte, time.Time, time.Time) (*Subscription, error) {
	return nil, errs.New(errs.KindInternal, "not built yet")
}

// SubscriptionBacklogs implements DeliveryStore.
func (s Deliveries) SubscriptionBacklogs(context.Context) ([]Backlog, error) {
	return nil, errs.New(errs.KindInternal, "not built yet")
}

// PushDriver is what a backend supplies for push subscriptions and backlogs (being built).
type PushDriver interface{}

// PushTx is the push part of a delivery transaction (being built).
type PushTx interface{}
