package store

import (
	"context"

	"github.com/sergas/core/internal/errs"
)

// Placeholders until replay and purge land (issue #10, this session).

// DeliveryReplay implements DeliveryStore.
func (s Deliveries) DeliveryReplay(context.Context, ReplayParams) (ReplayResult, error) {
	return ReplayResult{}, errs.New(errs.KindInternal, "not built yet")
}

// EventsPurge implements DeliveryStore.
func (s Deliveries) EventsPurge(context.Context, PurgeParams) (PurgeResult, error) {
	return PurgeResult{}, errs.New(errs.KindInternal, "not built yet")
}

// ReplayDriver is what a backend supplies for replay and purge (being built).
type ReplayDriver interface{}

// ReplayTx is the replay and purge part of a delivery transaction (being built).
type ReplayTx interface{}
