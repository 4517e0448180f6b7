package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/grpcserver"
	wait "github.com/sergas/core/internal/testutil"
)

// bgService is a service whose one RPC is answered by its background worker, as a group committer
// answers appends: the RPC waits for the worker.
type bgService struct {
	fakeService
	jobs   chan chan struct{}
	worker func(ctx context.Context) error
	mu     sync.Mutex
	events []string
}

func newBGService() *bgService { return &bgService{jobs: make(chan chan struct{})} }

func (b *bgService) record(e string) { b.mu.Lock(); b.events = append(b.events, e); b.mu.Unlock() }
func (b *bgService) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.events...)
}

func (b *bgService) Register(s *grpcserver.Server) {
	s.Register(&grpc.ServiceDesc{ServiceName: "test.Work", HandlerType: (*any)(nil), Methods: []grpc.MethodDesc{{
		MethodName: "Do",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, _ any) (any, error) {
				done := make(chan struct{})
				select {
				case b.jobs <- done:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				b.record("rpc queued")
				select {
				case <-done:
					return &emptypb.Empty{}, nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Work/Do"}, h)
		},
	}}}, b)
}
func (b *bgService) Policy() auth.Policy { return auth.Policy{Public: []string{"/test.Work/Do"}} }
func (b *bgService) Close() error        { b.record("store closed"); return nil }
func (b *bgService) Background() Background {
	return Background{Workers: []Worker{{Name: "test.worker", Run: b.worker}}}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testRuntime() *Runtime {
	return &Runtime{Security: &auth.Security{Authenticator: &auth.Authenticator{Disabled: true}, Limits: auth.NewLimiters(auth.DefaultLimits)}}
}

func testConfig(addr string) ServiceConfig {
	return ServiceConfig{Name: "probe", GRPC: grpcserver.Config{Addr: addr, MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, ShutdownTimeout: 5 * time.Second}}
}

// serve runs Serve in the background; it returns the bound address and the function that stops it and
// returns Serve's error.
func serve(t *testing.T, svc Service, addr string, bound func(string)) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, testConfig(addr), testRuntime(), quietLog(), svc, func(a string) {
			if bound != nil {
				bound(a)
			}
			addrc <- a
		})
	}()
	var once sync.Once
	var err error
	stop := func() error { once.Do(func() { cancel(); err = <-done }); return err }
	t.Cleanup(func() { _ = stop() })
	select {
	case a := <-addrc:
		return a, stop
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve never bound its listener")
	}
	return "", nil
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A worker starts once the listener is open: its first act, an RPC to its own server without waiting
// for readiness (a refused connection fails at once), succeeds.
func TestWorkersStartAfterTheListenerOpens(t *testing.T) {
	b := newBGService()
	var mu sync.Mutex
	addr := ""
	result := make(chan error, 1)
	b.worker = func(ctx context.Context) error {
		mu.Lock()
		a := addr
		mu.Unlock()
		if a == "" {
			result <- errors.New("the worker started before Serve reported its address")
			<-ctx.Done()
			return nil
		}
		// A worker that serves the RPC it is about to make.
		go func() {
			select {
			case done := <-b.jobs:
				close(done)
			case <-ctx.Done():
			}
		}()
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			result <- err
			return nil
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		result <- conn.Invoke(cctx, "/test.Work/Do", &emptypb.Empty{}, &emptypb.Empty{})
		<-ctx.Done()
		return nil
	}
	serve(t, b, "127.0.0.1:0", func(a string) { mu.Lock(); addr = a; mu.Unlock() })
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("the worker's first call to its own listener: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never ran")
	}
}

// A listener that cannot open (the port is taken) fails Serve before any worker starts, and the service
// is still closed.
func TestWorkersDoNotStartWhenTheListenerFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	b := newBGService()
	ran := make(chan struct{}, 1)
	b.worker = func(ctx context.Context) error { ran <- struct{}{}; <-ctx.Done(); return nil }
	err = Serve(context.Background(), testConfig(taken.Addr().String()), testRuntime(), quietLog(), b, nil)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Serve on a taken port: %v", err)
	}
	select {
	case <-ran:
		t.Fatal("a worker ran although the listener never opened")
	default: // Serve has returned: a worker it had started would have signalled by now or never
	}
	if got := b.log(); len(got) != 1 || got[0] != "store closed" {
		t.Fatalf("events %v, want the service closed", got)
	}
}

// On stop, an RPC that waits on a worker is answered (workers outlive the drain), then the workers stop,
// then the store closes: in that order.
func TestStopDrainsRPCsThenWorkersThenClosesTheStore(t *testing.T) {
	b := newBGService()
	gate := make(chan struct{})
	b.worker = func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				b.record("worker stopped")
				return nil
			case done := <-b.jobs:
				select { // held until the stop has begun
				case <-gate:
				case <-ctx.Done():
					b.record("worker cancelled with an RPC waiting")
					return nil
				}
				b.record("worker answered")
				close(done)
			}
		}
	}
	addr, stop := serve(t, b, "127.0.0.1:0", nil)
	conn := dial(t, addr)
	rpc := make(chan error, 1)
	go func() { rpc <- conn.Invoke(context.Background(), "/test.Work/Do", &emptypb.Empty{}, &emptypb.Empty{}) }()
	waitUntil(t, "the RPC queued on the worker", func() bool { return len(b.log()) > 0 })
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The stop has begun when the server refuses new RPCs (health goes NOT_SERVING, then the listener
	// closes).
	probe := healthpb.NewHealthClient(dial(t, addr))
	waitUntil(t, "the server stopping", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := probe.Check(ctx, &healthpb.HealthCheckRequest{})
		return err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING
	})
	close(gate)
	if err := <-rpc; err != nil {
		t.Fatalf("the RPC waiting on the worker during the stop: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	want := []string{"rpc queued", "worker answered", "worker stopped", "store closed"}
	if got := b.log(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// A worker that panics or fails is restarted, each time later (min·2ⁿ, jittered over its upper half),
// and every restart is counted under its name; a worker that returns nil is finished.
func TestFailingWorkerRestartsWithBackoff(t *testing.T) {
	const name = "test.flaky"
	before := testutil.ToFloat64(workerRestarts().WithLabelValues(name))
	starts := make(chan time.Time, 10)
	n := 0
	w := Worker{Name: name, Run: func(ctx context.Context) error {
		starts <- time.Now()
		n++
		switch n {
		case 1:
			panic("boom")
		case 2, 3:
			return errors.New("transient")
		}
		return nil // finished: not restarted again
	}}
	const minB = 40 * time.Millisecond
	ws, err := StartWorkers(context.Background(), quietLog(), Background{Workers: []Worker{w}, MinBackoff: minB, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for range 4 {
		select {
		case s := <-starts:
			at = append(at, s)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d starts", len(at))
		}
	}
	if late := ws.Stop(5 * time.Second); len(late) > 0 {
		t.Fatalf("still running: %v", late)
	}
	for i := 1; i < len(at); i++ {
		least := (minB << (i - 1)) / 2
		if gap := at[i].Sub(at[i-1]); gap < least {
			t.Errorf("restart %d came %v after the failure, want at least %v", i, gap, least)
		}
	}
	if got := testutil.ToFloat64(workerRestarts().WithLabelValues(name)) - before; got != 3 {
		t.Fatalf("restarts counted: %v, want 3", got)
	}
	select {
	case <-starts:
		t.Fatal("a finished worker was started again")
	default:
	}
}

// Stop waits for workers up to its timeout and names the ones that did not return.
func TestStopNamesWorkersThatIgnoreCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 2)
	ws, err := StartWorkers(context.Background(), quietLog(), Background{Workers: []Worker{
		{Name: "test.polite", Run: func(ctx context.Context) error { started <- struct{}{}; <-ctx.Done(); return nil }},
		{Name: "test.stubborn", Run: func(ctx context.Context) error { started <- struct{}{}; <-release; return nil }},
	}})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	<-started
	if late := ws.Stop(100 * time.Millisecond); len(late) != 1 || late[0] != "test.stubborn" {
		t.Fatalf("late workers %v, want [test.stubborn]", late)
	}
}

// A single-replica worker without an elector is refused before anything listens.
func TestSingleReplicaWorkerNeedsAnElector(t *testing.T) {
	b := newBGService()
	b.worker = func(context.Context) error { return nil }
	svc := &singleNoElector{b}
	err := Serve(context.Background(), testConfig("127.0.0.1:0"), testRuntime(), quietLog(), svc, func(string) { t.Error("listener opened") })
	if err == nil || !strings.Contains(err.Error(), "elector") {
		t.Fatalf("Serve: %v", err)
	}
}

type singleNoElector struct{ *bgService }

func (s *singleNoElector) Background() Background {
	return Background{Workers: []Worker{{Name: "test.single", Run: s.worker, SingleReplica: true}}}
}

// waitUntil polls cond until it holds, failing after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Eventually(t, 10*time.Second, what, cond)
}
