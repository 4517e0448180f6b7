package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
)

// TestPushSubscriptionIsNotPulled: Receive and Poll refuse a push subscription (its deliveries are the
// push workers'), and GetDelivery shows a push attempt's HTTP status and excerpt.
func TestPushSubscriptionIsNotPulled(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.WriteHeader(502)
			io.WriteString(w, "bad gateway")
		}))
		defer ts.Close()
		sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, time.Second)
		if _, err := r.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: sub.GetId()}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("Poll: %v, want FAILED_PRECONDITION", err)
		}
		stream, err := r.client.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: sub.GetId()})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("Receive: %v, want FAILED_PRECONDITION", err)
		}
		r.ingest(t)
		del, _ := r.waitAttempts(t, sub.GetId(), 1)
		got, err := r.client.GetDelivery(t.Context(), &webhookv1.GetDeliveryRequest{Id: strconv.FormatInt(del.ID, 10)})
		if err != nil {
			t.Fatal(err)
		}
		a := got.GetDelivery().GetAttempts()
		if len(a) != 1 || a[0].GetHttpStatus() != 502 || a[0].GetResponseExcerpt() != "bad gateway" || a[0].GetError() != "HTTP 502" {
			t.Fatalf("attempts %v", a)
		}
	})
}
