package processtest

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/proctest"
	"github.com/sergas/core/internal/testutil"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

const (
	replicas            = 3
	consumersPerReplica = 2
	// replicaEvents is how many events are ingested in all, spread over two senders per replica.
	replicaEvents = 720
)

// TestReplicasDeliverEachEventExactlyOnce: three sergas-webhook processes on one PostgreSQL schema,
// two streaming consumers on each (Receive with max_in_flight 8), while two senders per process ingest
// signed events. Every consumer acks what it is handed, through its own process or the next one; the
// consumers on the second of each process's pair give back about one delivery in five the first time
// they see it (Nack, due again 10 ms later), so redeliveries cross processes. Leases last a minute, so
// a delivery changes hands only when it is given back. Until every event is acked:
//   - no delivery is handed to a consumer after an Ack of it was answered OK, nor while another
//     consumer holds its lease (the previous holder gave it back before it came);
//   - each delivery's Ack is accepted once, for its latest lease; an Ack repeated after it (or after a
//     Nack) is refused;
//
// and afterwards every event has exactly one delivery, DELIVERED, whose attempt history (GetDelivery)
// matches the hand-outs the consumers saw, attempt by attempt, none starting before the one before it
// ended.
func TestReplicasDeliverEachEventExactlyOnce(t *testing.T) {
	c := dbtest.Config(t, db.Postgres)
	k := newDeliveryKeys(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The first process migrates the schema; the others start on it.
	var procs []*proctest.Proc
	for range replicas {
		procs = append(procs, startDeliveryWebhook(t, k, c))
	}
	clients := make([]deliveryClients, len(procs))
	for i, p := range procs {
		clients[i] = deliveryClientsOf(t, p, k)
	}
	sub := createSubscription(t, ctx, clients[0].admin, "exactly-once", time.Minute, 10)

	l := newLedger()
	cctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	errc := make(chan error, replicas*consumersPerReplica)
	for p := range procs {
		for j := range consumersPerReplica {
			c := &consumer{name: fmt.Sprintf("replica%d-consumer%d", p, j), sub: sub, recv: clients[p].consume,
				settle: clients[(p+j)%len(procs)].consume, maxInFlight: 8, l: l, repeatEvery: 7, decide: ackAll}
			if j == 1 {
				c.decide = nackOneInFive
			}
			go func() { errc <- c.run(cctx) }()
		}
	}

	// Ingest while the consumers run.
	events := map[string]bool{}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	ingestErr := make(chan error, replicas*2)
	for s := range replicas * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range replicaEvents / (replicas * 2) {
				d := newDelivery(fmt.Sprintf("r%d-%d", s, n))
				resp, err := clients[s%replicas].ingest.Ingest(ctx, d.request())
				if err != nil || resp.GetDuplicate() {
					ingestErr <- fmt.Errorf("ingest %s: duplicate=%v, %v", d.id, resp.GetDuplicate(), err)
					return
				}
				mu.Lock()
				events[resp.GetEventId()] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(ingestErr)
	for err := range ingestErr {
		t.Fatal(err)
	}
	if len(events) != replicaEvents {
		t.Fatalf("%d events stored, want %d", len(events), replicaEvents)
	}

	testutil.Eventually(t, 2*time.Minute, "every event acked", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("a consumer stopped: %v", err)
		default:
		}
		return l.ackedCount() >= replicaEvents || l.failed() // a violation is reported below
	})
	stopConsumers()
	for range replicas * consumersPerReplica {
		if err := <-errc; err != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	l.check(t)

	ds := listDeliveries(t, ctx, clients[1].read, sub)
	if len(ds) != replicaEvents {
		t.Fatalf("%d deliveries listed, want one per event: %d", len(ds), replicaEvents)
	}
	seen := map[string]bool{}
	redelivered, crossed := 0, 0
	for _, d := range ds {
		switch {
		case !events[d.GetEventId()]:
			t.Fatalf("delivery %s is for event %s, not one ingested", d.GetId(), d.GetEventId())
		case seen[d.GetEventId()]:
			t.Fatalf("event %s has two deliveries", d.GetEventId())
		case d.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED:
			t.Fatalf("delivery %s: %v, want DELIVERED", d.GetId(), d.GetStatus())
		}
		seen[d.GetEventId()] = true
		hs := l.handouts(d.GetId())
		checkAttempts(t, ctx, clients[2].read, d.GetId(), hs)
		if len(hs) > 1 {
			redelivered++
			if hs[0].consumer[:len("replicaN")] != hs[len(hs)-1].consumer[:len("replicaN")] {
				crossed++
			}
		}
	}
	if redelivered == 0 || crossed == 0 {
		t.Fatalf("%d deliveries redelivered, %d of them acked on another process: the test exercised no redelivery across processes", redelivered, crossed)
	}
	t.Logf("%d events, each acked once by one of %d consumers on %d processes; %d redelivered after a Nack, %d of them to another process",
		replicaEvents, replicas*consumersPerReplica, replicas, redelivered, crossed)
	for _, p := range procs {
		p.Stop(t)
	}
}

// ackAll acks every hand-out.
func ackAll(*handout) action { return doAck }

// nackOneInFive gives back about one delivery in five (chosen by its id) the first time it is handed out.
func nackOneInFive(h *handout) action {
	f := fnv.New32a()
	f.Write([]byte(h.deliveryID))
	if h.attempt == 1 && f.Sum32()%5 == 0 {
		return doNack
	}
	return doAck
}
