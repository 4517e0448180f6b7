package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"

	"google.golang.org/grpc"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/tools/bench/internal/auditload"
)

// auditCall returns the audit call named call and how many events each call carries:
//
//   - record: RecordEvent of one event with its own idempotency key;
//   - records: RecordEvents of batch events, each with its own key;
//   - list-actor: ListEvents of one actor, 100 events after a random sequence number of the seeded store
//     (storeSize events);
//   - list-session: ListEvents of one random session of the seeded store (its 100 events);
//   - list-all: ListEvents without a filter, 100 events after a random sequence number.
//
// Every ListEvents call checks that it got a full page, so that a store that is not the seeded one (or
// an empty answer) fails the run instead of measuring nothing.
func auditCall(call string, conn *grpc.ClientConn, batch int, storeSize int64) (func(context.Context) error, int, error) {
	ac := auditv1.NewAuditServiceClient(conn)
	// Keys unique to this process: runs against the same store never reuse one.
	prefix := fmt.Sprintf("lg-%d-%d", os.Getpid(), rand.Int64())
	var n atomic.Int64
	switch call {
	case "record":
		return func(ctx context.Context) error {
			i := int(n.Add(1))
			_, err := ac.RecordEvent(ctx, auditload.Request(i, i, fmt.Sprintf("%s-%d", prefix, i)))
			return err
		}, 1, nil
	case "records":
		if batch < 1 {
			return nil, 0, fmt.Errorf("-batch must be at least 1")
		}
		return func(ctx context.Context) error {
			req := &auditv1.RecordEventsRequest{Events: make([]*auditv1.RecordEventRequest, batch)}
			for j := range req.Events {
				i := int(n.Add(1))
				req.Events[j] = auditload.Request(i, i, fmt.Sprintf("%s-%d", prefix, i))
			}
			resp, err := ac.RecordEvents(ctx, req)
			if err == nil && len(resp.GetResults()) != batch {
				err = fmt.Errorf("RecordEvents answered %d results for %d events", len(resp.GetResults()), batch)
			}
			return err
		}, batch, nil
	case "list-actor", "list-session", "list-all":
		if storeSize < 2*int64(auditload.Actors*auditload.SessionEvents) {
			return nil, 0, fmt.Errorf("-store-size must be the seeded store's size (at least %d)", 2*auditload.Actors*auditload.SessionEvents)
		}
		return func(ctx context.Context) error {
			req := &auditv1.ListEventsRequest{PageSize: 100}
			// Far enough from the end that a full page always follows.
			after := rand.Int64N(storeSize - int64(auditload.Actors*auditload.SessionEvents))
			switch call {
			case "list-actor":
				req.Actor = auditload.Actor(1 + rand.Int64N(auditload.Actors))
				req.PageToken = pagetoken.EncodeInt(after)
			case "list-session":
				// A session wholly inside the store: it holds SessionEvents events.
				req.SessionId = auditload.Session(1 + after)
			case "list-all":
				req.PageToken = pagetoken.EncodeInt(after)
			}
			resp, err := ac.ListEvents(ctx, req)
			if err == nil && len(resp.GetEvents()) != 100 {
				err = fmt.Errorf("ListEvents %s answered %d events, not a full page of 100: is the store the seeded one?", call, len(resp.GetEvents()))
			}
			return err
		}, 1, nil
	}
	return nil, 0, fmt.Errorf("unknown -call %q", call)
}
