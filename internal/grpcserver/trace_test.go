package grpcserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/logging"
	"github.com/sergas/core/internal/testutil"
)

// A call continues the caller's traceparent: its log line names the caller's trace and a span of its
// own, and a failed call names the trace in its trailer (x-trace-id); a call without a traceparent gets
// a trace of its own all the same.
func TestCallsNameTheirTrace(t *testing.T) {
	buf := &testutil.LogBuffer{}
	log := logging.New(logging.Config{Level: slog.LevelDebug, Format: "json"}, buf)
	var fail atomic.Bool
	conn := serveProbe(t, log, func(context.Context) error {
		if fail.Load() {
			return errs.New(errs.KindNotFound, "no such thing")
		}
		return nil
	})

	const traceID, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	withParent := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+traceID+"-"+caller+"-01")
	var trailer metadata.MD
	if err := conn.Invoke(withParent, "/test.Probe/Call", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if v := trailer.Get("x-trace-id"); len(v) != 0 {
		t.Fatalf("a successful call's trailer names its trace: %v", v)
	}
	fail.Store(true)
	err := conn.Invoke(withParent, "/test.Probe/Call", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound || strings.Join(trailer.Get("x-trace-id"), ",") != traceID {
		t.Fatalf("failed call: %v, trailer %v", err, trailer)
	}
	err = conn.Invoke(t.Context(), "/test.Probe/Call", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Trailer(&trailer))
	own := strings.Join(trailer.Get("x-trace-id"), ",")
	if status.Code(err) != codes.NotFound || len(own) != 32 || own == traceID || strings.Trim(own, "0") == "" {
		t.Fatalf("call without traceparent: %v, trailer %v", err, trailer)
	}

	lines := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil || line["msg"] != "rpc" {
			continue
		}
		id, _ := line["trace_id"].(string)
		span, _ := line["span_id"].(string)
		if len(span) != 16 || span == caller {
			t.Errorf("line without a span of its own: %s", l)
		}
		lines[id]++
	}
	if lines[traceID] != 2 || lines[own] != 1 {
		t.Fatalf("rpc lines by trace %v, want 2 of %s and 1 of %s:\n%s", lines, traceID, own, buf.String())
	}
}

// A server span ends in error for the codes OpenTelemetry's RPC conventions give the server (unknown,
// deadline exceeded, unimplemented, internal, unavailable, data loss) and for none that name the caller.
func TestServerErrorCodes(t *testing.T) {
	server := map[codes.Code]bool{codes.Unknown: true, codes.DeadlineExceeded: true, codes.Unimplemented: true,
		codes.Internal: true, codes.Unavailable: true, codes.DataLoss: true}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got := serverError(c); got != server[c] {
			t.Errorf("%v: server error %v, want %v", c, got, server[c])
		}
	}
}
