package postgres

import (
	"slices"
	"testing"
	"time"

	"github.com/sergas/core/services/webhook/store"
)

// A delivery named twice in one update is written as its last entry, as statements one per entry in
// order would leave it; a zero time is NULL.
func TestUpdateArgsKeepTheLastEntryOfADelivery(t *testing.T) {
	now := time.Now()
	args := updateArgs([]*store.Delivery{
		{ID: 7, Status: store.DeliveryLeased, AvailableTime: now},
		{ID: 8, Status: store.DeliveryLeased, AvailableTime: now},
		{ID: 7, Status: store.DeliveryDelivered},
	})
	ids, statuses, avail := args[0].([]int64), args[1].([]int16), args[3].([]*time.Time)
	if !slices.Equal(ids, []int64{8, 7}) || !slices.Equal(statuses, []int16{int16(store.DeliveryLeased), int16(store.DeliveryDelivered)}) {
		t.Fatalf("ids %v statuses %v", ids, statuses)
	}
	if avail[0] == nil || avail[1] != nil {
		t.Fatalf("available times %v", avail)
	}
}
