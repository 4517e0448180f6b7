package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request still running when SHUTDOWN_TIMEOUT passes is cut and counted in the log, and Serve returns
// nil: a stop is not a failure (it used to return context.DeadlineExceeded, so the binaries exited 1).
func TestShutdownCutsStragglersAndSucceeds(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	rec := &recorder{answer: func(ctx context.Context, _ string) error {
		entered <- struct{}{}
		<-release // a handler that does not watch its context
		return nil
	}}
	logs := &syncBuffer{}
	g := newGateway(t, map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "SHUTDOWN_TIMEOUT": "200ms"}, serveFakes(t, rec), logs)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	addr := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, func(a string) { addr <- a }) }()
	base := "http://" + <-addr

	answered := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/v1/connections")
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the service")
	}
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after cutting a straggler: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	select {
	case <-answered: // cut: an error, or whatever the gateway managed to write
	case <-time.After(10 * time.Second):
		t.Fatal("the straggling request was not cut")
	}
	if !strings.Contains(logs.String(), `"requests":1`) {
		t.Errorf("the log does not count the cut request:\n%s", logs.String())
	}
}
