package webhook

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
)

// TestPushCurrentAfterAnotherWorkerReread: a worker read the targets, the subscription's secret was
// rotated (previous dropped at once), and another worker read the targets again before the first claimed.
// The first worker's batch must sign with the new secret alone, although the cache itself is current.
func TestPushCurrentAfterAnotherWorkerReread(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d)
		a, b := newSigningSecret(t, 32), newSigningSecret(t, 32)
		sub := r.createPush(t, "hook", "http://127.0.0.1:9/", a, true, time.Second)
		p := &pusher{s: r.srv}
		find := func() *pushTarget {
			t.Helper()
			ts, err := p.targets(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range ts {
				if x.sub.ID == sub.GetId() {
					return x
				}
			}
			t.Fatal("the subscription is not a target")
			return nil
		}
		old := find() // the first worker's pass
		if _, err := r.client.RotateSigningSecret(t.Context(), &webhookv1.RotateSigningSecretRequest{Id: sub.GetId(),
			SigningSecret: b, PreviousSecretTtl: durationpb.New(0)}); err != nil {
			t.Fatal(err)
		}
		find() // the second worker's pass reads again
		want, err := parseStandardSecret(b)
		if err != nil {
			t.Fatal(err)
		}
		keys := p.current(t.Context(), old).keysAt(r.clock.now())
		if len(keys) != 1 || !bytes.Equal(keys[0], want) {
			t.Fatalf("the first worker signs with %d keys, new secret first: %v", len(keys), len(keys) > 0 && bytes.Equal(keys[0], want))
		}
	})
}
