// Package auditload describes the audit benchmark's events, so that the load generator's requests and
// the seeded 10-million-event store look alike: agents recording tool calls with a session, a request id,
// the service that recorded them and a little metadata, one value of which (an access token) the
// service must redact.
//
// Seeded event i (1-based) belongs to actor Actor(i) and session Session(i): 1,000 actors, each with
// every 1,000th event, and sessions of SessionEvents events spread over 100,000 sequence numbers, so that
// a filtered page reads rows scattered through the table, as a real log's would be.
package auditload

import (
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
)

const (
	// Actors is how many distinct actors the seeded store holds.
	Actors = 1000
	// SessionEvents is how many events each seeded session holds.
	SessionEvents = 100
)

// Actor is the actor of seeded event i.
func Actor(i int64) string { return fmt.Sprintf("agent-%03d", (i-1)%Actors) }

// Session is the session of seeded event i: Actors sessions run side by side, each for SessionEvents
// events.
func Session(i int64) string {
	return fmt.Sprintf("session-%07d", (i-1)/(Actors*SessionEvents)*Actors+(i-1)%Actors)
}

// Sessions is how many sessions a store of n seeded events holds (the last ones may be short).
func Sessions(n int64) int64 { return (n + SessionEvents - 1) / SessionEvents }

// Metadata is the metadata every benchmark event carries. access_token is redacted by the service
// (redaction on, as by default); the caller's text therefore differs from what is stored. It is one
// shared, read-only message: the load generator's cost per event should be its own work, not rebuilding it.
func Metadata() *structpb.Struct { return metadata }

var metadata, _ = structpb.NewStruct(map[string]any{
	"tool": "zoho.crm.update_record", "module": "Deals", "fields": []any{"Stage", "Amount"},
	"amount": 12500, "access_token": "1000.bench.not-a-real-token",
})

// StoredMetadata is Metadata as the service stores it (canonical JSON, the token redacted).
const StoredMetadata = `{"access_token":"[REDACTED]","amount":12500,"fields":["Stage","Amount"],"module":"Deals","sergas.redacted":true,"tool":"zoho.crm.update_record"}`

// Request is the RecordEvent request of the load generator's n-th event from caller c; key, when not
// empty, is its idempotency key (agents deliver from an outbox, with retries).
func Request(c, n int, key string) *auditv1.RecordEventRequest {
	return &auditv1.RecordEventRequest{
		Actor: fmt.Sprintf("agent-%03d", c%Actors), Action: "crm.deal.update", Resource: fmt.Sprintf("Deals/%d", n),
		Outcome: auditv1.Outcome_OUTCOME_SUCCESS, ActorType: auditv1.ActorType_ACTOR_TYPE_AGENT,
		SessionId: fmt.Sprintf("lg-session-%d", c), RequestId: fmt.Sprintf("req-%d-%d", c, n), SourceService: "agent-runtime",
		Metadata: Metadata(), IdempotencyKey: key,
	}
}
