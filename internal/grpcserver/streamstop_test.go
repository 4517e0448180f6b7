package grpcserver

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestStopEndsStreamsAtOnce: a stream open when the server stops (health Watch never ends on its own)
// ends at once with UNAVAILABLE instead of holding the stop for ShutdownTimeout (5 s here) and then
// being cut.
func TestStopEndsStreamsAtOnce(t *testing.T) {
	_, conn, cancel, done := startProbe(t, &probe{})
	w, err := healthpb.NewHealthClient(conn).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch message: %v %v", r, err)
	}
	began := time.Now()
	cancel()
	var end error
	for i := 0; i < 10; i++ { // health may first send NOT_SERVING
		if _, end = w.Recv(); end != nil {
			break
		}
	}
	if status.Code(end) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want Unavailable", end)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve still waiting 3 s after the stop began: the stream held it")
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("stop took %v", d)
	}
}
