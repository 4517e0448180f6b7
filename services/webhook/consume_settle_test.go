package webhook

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/sergas/core/internal/errs"
)

// settleEach settles ack ids in parallel but reports the refused ones in request order; a failure that
// is not a refusal fails the call, and a call whose caller left before every id was tried is an error,
// never a report that the untried ones were settled.
func TestSettleEachOrderAndErrors(t *testing.T) {
	const n = 100
	ids := make([]string, n)
	refs := make([]ackRef, n)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
		refs[i] = ackRef{deliveryID: int64(i + 1), lease: 1}
	}
	var want []string
	for i := 0; i < n; i += 3 {
		want = append(want, ids[i])
	}
	refused, err := settleEach(t.Context(), ids, refs, func(_ context.Context, r ackRef) error {
		switch {
		case (r.deliveryID-1)%3 != 0:
			return nil
		case r.deliveryID%2 == 0:
			return errs.NotFound("gone")
		}
		return errs.New(errs.KindFailedPrecondition, "passed on")
	})
	if err != nil || !slices.Equal(refused, want) {
		t.Fatalf("refused %v (%v), want %v", refused, err, want)
	}

	var calls atomic.Int32
	_, err = settleEach(t.Context(), ids, refs, func(_ context.Context, r ackRef) error {
		calls.Add(1)
		if r.deliveryID == 10 {
			return errs.New(errs.KindUnavailable, "database down")
		}
		return nil
	})
	if errs.KindOf(err) != errs.KindUnavailable {
		t.Fatalf("a store failure: %v", err)
	}

	// The ids after the fifth wait for the cancel: otherwise the other workers could try them all while
	// the fifth's worker is descheduled, and the call would rightly succeed.
	ctx, cancel := context.WithCancel(t.Context())
	_, err = settleEach(ctx, ids, refs, func(ctx context.Context, r ackRef) error {
		switch {
		case r.deliveryID == 5:
			cancel()
		case r.deliveryID > 5:
			<-ctx.Done()
		}
		return nil
	})
	if err == nil {
		t.Fatal("a call cut short reported success")
	}
}
