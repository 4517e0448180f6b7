package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
)

func decodeEntry(t *testing.T, r AuditRecord) *auditv1.RecordEventRequest {
	t.Helper()
	e, err := auditEntry(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	var req auditv1.RecordEventRequest
	if err := proto.Unmarshal(e.Payload, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

// An operator's record names them (made to fit the audit service's actor); metadata a Struct cannot
// hold is kept as text instead of failing the change it describes; a record without a time is now.
func TestAuditEntry(t *testing.T) {
	when := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
	req := decodeEntry(t, AuditRecord{Action: AuditPurged, Actor: "ops\x00" + strings.Repeat("x", 300), Resource: "events",
		Metadata: map[string]any{"before": when, "ids": []int64{1, 2}, "n": int64(3), "ok": true}})
	if len(req.GetActor()) > 256 || strings.ContainsRune(req.GetActor(), 0) || !strings.HasPrefix(req.GetActor(), "ops?x") ||
		req.GetActorType() != auditv1.ActorType_ACTOR_TYPE_UNSPECIFIED {
		t.Fatalf("actor %q (%v)", req.GetActor(), req.GetActorType())
	}
	m := req.GetMetadata().AsMap()
	if m["before"] != "2026-03-04T05:06:07.891234567Z" || m["ids"] != "[1 2]" || m["n"] != float64(3) || m["ok"] != true {
		t.Fatalf("metadata %v", m)
	}
	if d := time.Since(req.GetOccurTime().AsTime()); d < 0 || d > time.Minute {
		t.Fatalf("occur time %v for a record without one", req.GetOccurTime().AsTime())
	}
	// Times are whole microseconds, as stored.
	req = decodeEntry(t, AuditRecord{Action: AuditDeadLettered, Resource: "subscriptions/x", Time: when})
	if !req.GetOccurTime().AsTime().Equal(when.Truncate(time.Microsecond)) || req.GetActor() != "sergas-webhook/"+Replica() {
		t.Fatalf("event %v", req)
	}
}
