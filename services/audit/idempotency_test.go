package audit

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// TestIdempotencyKeysBelongToTheWriter: reusing another writer's key neither reveals its event nor
// drops it; the same key with other content from the same writer is a conflict, the same content a
// duplicate.
func TestIdempotencyKeysBelongToTheWriter(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		secret := request(map[string]any{"terms": "confidential"})
		secret.IdempotencyKey = "deal-42-update"
		// An attacker with audit:write pre-claims the predictable key.
		claim := request(map[string]any{"noise": true})
		claim.IdempotencyKey = secret.IdempotencyKey
		if _, err := s.RecordEvent(as("apikey:attacker"), claim); err != nil {
			t.Fatal(err)
		}
		first, err := s.RecordEvent(as("apikey:victim"), secret)
		if err != nil || first.GetDuplicate() || first.GetEvent().GetMetadata().GetFields()["terms"] == nil {
			t.Fatalf("the victim's event was dropped: %v %v", first, err)
		}
		// The attacker reuses the key: it gets its own event back, never the victim's.
		stolen, err := s.RecordEvent(as("apikey:attacker"), claim)
		if err != nil || !stolen.GetDuplicate() || stolen.GetEvent().GetPrincipal() != "apikey:attacker" ||
			stolen.GetEvent().GetMetadata().GetFields()["terms"] != nil {
			t.Fatalf("attacker's retry: %v %v", stolen, err)
		}
		if _, err := s.RecordEvent(as("apikey:attacker"), secret); !errors.Is(err, errs.ErrAlreadyExists) {
			t.Fatalf("attacker's key with the victim's content: %v, want AlreadyExists", err)
		}
		// The victim's retry (occur_time left to the service both times) is a duplicate.
		again, err := s.RecordEvent(as("apikey:victim"), secret)
		if err != nil || !again.GetDuplicate() || again.GetEvent().GetId() != first.GetEvent().GetId() {
			t.Fatalf("retry: %v %v", again, err)
		}
		changes := map[string]func(r *auditv1.RecordEventRequest){
			"actor":    func(r *auditv1.RecordEventRequest) { r.Actor = "agent-8" },
			"action":   func(r *auditv1.RecordEventRequest) { r.Action = "crm.deal.delete" },
			"resource": func(r *auditv1.RecordEventRequest) { r.Resource = "Deals/43" },
			"outcome":  func(r *auditv1.RecordEventRequest) { r.Outcome = auditv1.Outcome_OUTCOME_DENIED },
			"metadata": func(r *auditv1.RecordEventRequest) {
				r.Metadata, _ = structpb.NewStruct(map[string]any{"terms": "other"})
			},
			"no metadata": func(r *auditv1.RecordEventRequest) { r.Metadata = nil },
			"occur_time":  func(r *auditv1.RecordEventRequest) { r.OccurTime = timestamppb.New(time.Now().Add(-time.Hour)) },
		}
		for name, change := range changes {
			r := request(map[string]any{"terms": "confidential"})
			r.IdempotencyKey = secret.IdempotencyKey
			change(r)
			if _, err := s.RecordEvent(as("apikey:victim"), r); !errors.Is(err, errs.ErrAlreadyExists) {
				t.Errorf("same key, other %s: %v, want AlreadyExists", name, err)
			}
		}
		// With an explicit occur_time, the retry must repeat it.
		timed := request(nil)
		timed.IdempotencyKey, timed.OccurTime = "timed", timestamppb.New(time.Now().Add(-time.Minute))
		a, err := s.RecordEvent(as("apikey:victim"), timed)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.RecordEvent(as("apikey:victim"), timed)
		if err != nil || !b.GetDuplicate() || b.GetEvent().GetId() != a.GetEvent().GetId() {
			t.Fatalf("timed retry: %v %v", b, err)
		}
		if n := count(t, st); n != 3 {
			t.Fatalf("%d events stored, want 3", n)
		}
	})
}
