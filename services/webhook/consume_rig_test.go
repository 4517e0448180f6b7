package webhook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/services/webhook/store"
)

// consumeRig is a webhook service on a real database, served over gRPC on loopback, with one
// subscription to every event; the server's clock stands still until a test moves it (leases and
// backoff follow it), while waits (Poll, Receive) run on real time.
type consumeRig struct {
	srv    *Server
	client webhookv1.WebhookServiceClient
	clock  *testClock
	ds     store.DeliveryStore
	sub    *webhookv1.Subscription
	// stop stops the server as SIGTERM does (streams end, unary calls finish).
	stop func()
	n    int // events ingested, for unique bodies
}

// subOpts shape the rig's subscription.
type subOpts struct {
	maxRetries int32
	lease      time.Duration
}

func newConsumeRig(t *testing.T, d db.Dialect, so subOpts, opts ...Option) *consumeRig {
	t.Helper()
	env := config.FromMap(map[string]string{"CLIENT_ADDR_SECRET": testAddrSecret, "WEBHOOK_SOURCES": "zoho:none",
		"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0", "WEBHOOK_RATE_LIMIT_PER_SECOND": "0"})
	cfg := LoadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(newStore(t, d), cfg, opts...)
	clock := newTestClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	srv.now = clock.now
	if srv.deliveries == nil {
		t.Fatalf("the %s store keeps no deliveries", d)
	}
	gs, err := grpcserver.New(grpcserver.Config{Addr: "127.0.0.1:0", MaxRecvBytes: 4 << 20, MaxSendBytes: 16 << 20,
		ShutdownTimeout: 5 * time.Second, MaxConcurrentStreams: 100}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	gs.Register(&webhookv1.WebhookService_ServiceDesc, srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop in 10s")
		}
	}
	t.Cleanup(stop)
	conn, err := grpc.NewClient(gs.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &consumeRig{srv: srv, client: webhookv1.NewWebhookServiceClient(conn), clock: clock, ds: srv.deliveries, stop: stop}
	req := &webhookv1.CreateSubscriptionRequest{Name: "agents",
		RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: &so.maxRetries, BackoffBase: durationpb.New(10 * time.Millisecond), BackoffCap: durationpb.New(time.Second)}}
	if so.lease > 0 {
		req.LeaseDuration = durationpb.New(so.lease)
	}
	resp, err := r.client.CreateSubscription(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	r.sub = resp.GetSubscription()
	return r
}

// ingest stores one event (with its delivery) and returns its id.
func (r *consumeRig) ingest(t *testing.T) string {
	t.Helper()
	r.n++
	resp, err := r.client.Ingest(from(t, "192.0.2.7"), delivery(fmt.Sprintf(`{"n":%d}`, r.n)))
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEventId()
}

// poll leases up to max deliveries to consumer without waiting.
func (r *consumeRig) poll(t *testing.T, consumer string, max int32) []*webhookv1.LeasedDelivery {
	t.Helper()
	resp, err := r.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: r.sub.GetId(), Consumer: consumer, MaxDeliveries: max})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDeliveries()
}

// pollOne leases exactly one delivery to consumer.
func (r *consumeRig) pollOne(t *testing.T, consumer string) *webhookv1.LeasedDelivery {
	t.Helper()
	got := r.poll(t, consumer, 1)
	if len(got) != 1 {
		t.Fatalf("%s got %d deliveries, want 1", consumer, len(got))
	}
	return got[0]
}

func (r *consumeRig) ack(t *testing.T, ackIDs ...string) []string {
	t.Helper()
	resp, err := r.client.Ack(t.Context(), &webhookv1.AckRequest{AckIds: ackIDs})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetRefusedAckIds()
}

func (r *consumeRig) nack(t *testing.T, msg string, delay *durationpb.Duration, ackIDs ...string) []string {
	t.Helper()
	resp, err := r.client.Nack(t.Context(), &webhookv1.NackRequest{AckIds: ackIDs, Error: msg, Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetRefusedAckIds()
}

func (r *consumeRig) get(t *testing.T, id string) *webhookv1.Delivery {
	t.Helper()
	resp, err := r.client.GetDelivery(t.Context(), &webhookv1.GetDeliveryRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDelivery()
}

// list returns every delivery of the rig's subscription in status st (any when unspecified).
func (r *consumeRig) list(t *testing.T, st webhookv1.DeliveryStatus) []*webhookv1.Delivery {
	t.Helper()
	var out []*webhookv1.Delivery
	token := ""
	for range 1000 {
		resp, err := r.client.ListDeliveries(t.Context(), &webhookv1.ListDeliveriesRequest{SubscriptionId: r.sub.GetId(), Status: st, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.GetDeliveries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
	t.Fatal("more than 1000 pages")
	return nil
}

func outcomes(d *webhookv1.Delivery) []string {
	var out []string
	for _, a := range d.GetAttempts() {
		out = append(out, a.GetOutcome()+"/"+a.GetConsumer())
	}
	return out
}

// recv reads from stream until n deliveries arrived, failing after 10 s.
func recv(t *testing.T, stream grpc.ServerStreamingClient[webhookv1.ReceiveResponse], n int) []*webhookv1.LeasedDelivery {
	t.Helper()
	type result struct {
		ds  []*webhookv1.LeasedDelivery
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var got []*webhookv1.LeasedDelivery
		for len(got) < n {
			m, err := stream.Recv()
			if err != nil {
				ch <- result{got, err}
				return
			}
			got = append(got, m.GetDeliveries()...)
		}
		ch <- result{got, nil}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("after %d deliveries: %v", len(res.ds), res.err)
		}
		return res.ds
	case <-time.After(10 * time.Second):
		t.Fatalf("fewer than %d deliveries within 10s", n)
		return nil
	}
}
