package grpcserver

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/telemetry"
	"github.com/sergas/core/internal/testutil"
)

// Every call is counted under its method and code, and timed, although the metric children are looked
// up once per method and code and then kept: the counts of each code stay apart.
func TestMetricsCountEveryCallByCode(t *testing.T) {
	var fail atomic.Bool
	_, conn, _, _ := startProbe(t, &probe{do: func(context.Context) error {
		if fail.Load() {
			return errs.NotFound("no such thing")
		}
		return nil
	}})
	m := telemetry.GRPC()
	handled := func(code string) float64 {
		return promtest.ToFloat64(m.Handled.WithLabelValues("test.Probe", "Call", code))
	}
	timed := func() uint64 {
		var d dto.Metric
		if err := m.Duration.WithLabelValues("test.Probe", "Call").(prometheus.Metric).Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetHistogram().GetSampleCount()
	}
	ok0, nf0, t0 := handled("OK"), handled("NotFound"), timed()
	for range 3 {
		if err := call(t.Context(), conn); err != nil {
			t.Fatal(err)
		}
	}
	fail.Store(true)
	for range 2 {
		if c := status.Code(call(t.Context(), conn)); c != codes.NotFound {
			t.Fatalf("code %v, want NotFound", c)
		}
	}
	if d := handled("OK") - ok0; d != 3 {
		t.Errorf("OK counted %v times, want 3", d)
	}
	if d := handled("NotFound") - nf0; d != 2 {
		t.Errorf("NotFound counted %v times, want 2", d)
	}
	if d := timed() - t0; d != 5 {
		t.Errorf("%d calls timed, want 5", d)
	}
}

// A successful call is not logged at the default level, and its line (method, code, peer) is written
// when the level is debug.
func TestSuccessLineOnlyAtDebug(t *testing.T) {
	for _, debug := range []bool{false, true} {
		var buf testutil.LogBuffer
		level := slog.LevelInfo
		if debug {
			level = slog.LevelDebug
		}
		s, err := New(Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20},
			slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})))
		if err != nil {
			t.Fatal(err)
		}
		s.Register(&probeDesc, &probe{do: func(context.Context) error { return nil }})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := call(t.Context(), conn); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		line := buf.String()
		logged := strings.Contains(line, "method=/test.Probe/Call") && strings.Contains(line, "code=OK") && strings.Contains(line, "peer=127.0.0.1:")
		if logged != debug {
			t.Errorf("debug=%v: success line logged=%v: %q", debug, logged, line)
		}
	}
}
