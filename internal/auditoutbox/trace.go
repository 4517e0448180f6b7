package auditoutbox

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/tracing"
)

// traceField is the field number under which an entry's payload carries the traceparent of the request
// that queued it. No field of RecordEventRequest has it (the numbers the contract may ever use are far
// below), so it travels in the payload's unknown fields: the table needs no column, an entry queued
// before this existed simply has none, and the sender takes it out before sending.
const traceField protowire.Number = 536_870_000

// NewEntryContext is NewEntry for an event queued while serving ctx's request: an event without a
// request_id takes the request's trace id, fixed now with the idempotency key (so every retry sends the
// same event), and the entry remembers the request's span, so that its delivery joins the request's
// trace however much later the sender sends it.
func NewEntryContext(ctx context.Context, prefix string, req *auditv1.RecordEventRequest, now time.Time) (Entry, error) {
	if req.GetRequestId() == "" {
		req.RequestId = tracing.TraceID(ctx)
	}
	e, err := NewEntry(prefix, req, now)
	if err != nil {
		return e, err
	}
	if tp := tracing.Traceparent(ctx); tp != "" {
		e.Payload = protowire.AppendString(protowire.AppendTag(e.Payload, traceField, protowire.BytesType), tp)
	}
	return e, nil
}

// takeTraceparent removes the traceparent from req's unknown fields and returns its span context (the
// zero value when the entry has none).
func takeTraceparent(req *auditv1.RecordEventRequest) trace.SpanContext {
	m := req.ProtoReflect()
	raw := m.GetUnknown()
	if len(raw) == 0 {
		return trace.SpanContext{}
	}
	var keep protoreflect.RawFields
	var tp string
	for b := []byte(raw); len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			break
		}
		if num == traceField && typ == protowire.BytesType {
			v, _ := protowire.ConsumeString(b[n:])
			tp = v
		} else {
			keep = append(keep, b[:n+m]...)
		}
		b = b[n+m:]
	}
	m.SetUnknown(keep)
	return tracing.FromTraceparent(tp, "")
}
