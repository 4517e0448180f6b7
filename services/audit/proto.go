package audit

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/services/audit/store"
)

// toProto converts a stored event for a response. It never fails, whatever the row holds, because one
// unreadable row must not make every page that contains it fail: rows written by earlier versions, or
// changed in the database, may break rules that writes now enforce. Metadata that cannot be shown as a
// Struct is shown as its stored text (unreadableMetadata); text that is not UTF-8, which protobuf refuses
// to send, has its invalid bytes replaced; a time outside the range a Timestamp holds is left unset.
func toProto(e *store.Event) *auditv1.Event {
	m, ok := decodeMetadata(e.Metadata)
	if !ok {
		m = unreadableMetadata(e.Metadata)
	}
	return eventProto(e, m)
}

// eventProto is toProto with the metadata already made into a Struct.
func eventProto(e *store.Event, m *structpb.Struct) *auditv1.Event {
	return &auditv1.Event{
		Id: text(e.ID), Sequence: e.Sequence,
		OccurTime: timestamp(e.OccurTime), RecordTime: timestamp(e.RecordTime),
		Actor: text(e.Actor), Action: text(e.Action), Resource: text(e.Resource), Outcome: auditv1.Outcome(e.Outcome),
		Metadata: m, IdempotencyKey: text(e.IdempotencyKey), PreviousHash: e.PreviousHash, Hash: e.Hash,
		Principal: text(e.Principal), Redacted: m.GetFields()[redactedKey].GetBoolValue(),
		ActorType: auditv1.ActorType(e.ActorType), SessionId: text(e.SessionID), RequestId: text(e.RequestID),
		SourceService: text(e.SourceService),
	}
}

// exportProto is toProto with the exact hash input a reader recomputes the hash from: the encoding's
// version and the metadata text as stored (invalid UTF-8 replaced, as in every field, which then no
// longer gives the stored hash: such a row was not written by the service).
func exportProto(e *store.Event) *auditv1.Event {
	pe := toProto(e)
	pe.HashVersion, pe.MetadataJson = e.HashVersion, text(e.Metadata)
	return pe
}

// text returns s unchanged when it is valid UTF-8 (without allocating), else with U+FFFD for bad bytes.
func text(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func timestamp(t time.Time) *timestamppb.Timestamp {
	ts := timestamppb.New(t)
	if ts.CheckValid() != nil {
		return nil
	}
	return ts
}
