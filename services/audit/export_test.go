package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
)

// grpcClient serves s through the platform's gRPC server (its interceptor maps domain errors) on
// loopback and returns a client; both stop when the test ends.
func grpcClient(t *testing.T, s *Server) auditv1.AuditServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(grpcServe(t, s), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return auditv1.NewAuditServiceClient(conn)
}

// grpcServe serves s as grpcClient does and returns its address.
func grpcServe(t *testing.T, s *Server) string {
	t.Helper()
	srv, err := grpcserver.New(grpcserver.Config{Addr: "127.0.0.1:0", MaxRecvBytes: 4 << 20, MaxSendBytes: 4 << 20,
		MaxConcurrentStreams: 100, ShutdownTimeout: 5 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(&auditv1.AuditService_ServiceDesc, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.Addr()
}

// exported reads a whole export.
func exported(ctx context.Context, c auditv1.AuditServiceClient, req *auditv1.ExportEventsRequest) ([]*auditv1.Event, []*auditv1.Checkpoint, error) {
	stream, err := c.ExportEvents(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var es []*auditv1.Event
	var cs []*auditv1.Checkpoint
	for range 1_000_000 {
		item, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return es, cs, nil
		}
		if err != nil {
			return es, cs, err
		}
		if e := item.GetEvent(); e != nil {
			es = append(es, e)
		} else {
			cs = append(cs, item.GetCheckpoint())
		}
	}
	return nil, nil, errors.New("the export does not end")
}

// clock is a settable clock for record times.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// record appends n events, the i-th (from 0) recorded at at(i).
func record(t *testing.T, s *Server, c *clock, n int, at func(i int) time.Time) {
	t.Helper()
	for i := range n {
		c.set(at(i))
		meta := map[string]any{"i": i, "note": "Zoë 日本語 🙂", "big": 1e21, "small": 0.1, "nested": map[string]any{"list": []any{1, "two", nil, true}}}
		if i%7 == 0 {
			meta["password"] = "hunter2"
		}
		req := request(meta)
		req.OccurTime = timestamppb.New(at(i).Add(-time.Second))
		req.SessionId, req.ActorType = fmt.Sprintf("s-%d", i%3), auditv1.ActorType_ACTOR_TYPE_AGENT
		if _, err := s.RecordEvent(as("writer"), req); err != nil {
			t.Fatal(err)
		}
	}
}

// ExportEvents streams every event of the range, in pages, with the exact hash input: each exported
// event is the stored one field by field, its hash recomputes from the exported fields, and it links
// to the one before; ranges by sequence and by record time select what they say, and bad ranges are
// refused.
func TestExportEvents(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		c := &clock{}
		s.now = c.now
		client := grpcClient(t, s)
		ctx := context.Background()

		for _, req := range []*auditv1.ExportEventsRequest{{}, {StartSequence: 1}, {StartTime: timestamppb.New(t0)}} {
			es, cs, err := exported(ctx, client, req)
			if err != nil || len(es)+len(cs) != 0 {
				t.Fatalf("empty log, %v: %d events, %d checkpoints, %v", req, len(es), len(cs), err)
			}
		}
		if _, _, err := exported(ctx, client, &auditv1.ExportEventsRequest{EndSequence: 1}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("empty log, end_sequence 1: %v", err)
		}

		const n = 600 // more than two pages
		record(t, s, c, n, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) })
		stored, err := st.EventList(ctx, store.EventListParams{Limit: n + 1})
		if err != nil || len(stored) != n {
			t.Fatalf("%d stored, %v", len(stored), err)
		}
		es, _, err := exported(ctx, client, &auditv1.ExportEventsRequest{})
		if err != nil || len(es) != n {
			t.Fatalf("whole log: %d events, %v", len(es), err)
		}
		prev := chain.Genesis
		for i, e := range es {
			want := stored[i]
			if e.GetSequence() != want.Sequence || e.GetHashVersion() != want.HashVersion || e.GetMetadataJson() != want.Metadata ||
				e.GetId() != want.ID || !bytes.Equal(e.GetHash(), want.Hash) || e.GetSessionId() != want.SessionID {
				t.Fatalf("event %d: exported %v, stored %+v", i, e, want)
			}
			f := chain.Fields{Version: e.GetHashVersion(), Sequence: e.GetSequence(), ID: e.GetId(),
				OccurMicros: e.GetOccurTime().AsTime().UnixMicro(), RecordMicros: e.GetRecordTime().AsTime().UnixMicro(),
				Actor: e.GetActor(), Action: e.GetAction(), Resource: e.GetResource(), Outcome: int32(e.GetOutcome()),
				Metadata: e.GetMetadataJson(), IdempotencyKey: e.GetIdempotencyKey(), Principal: e.GetPrincipal(),
				ActorType: int32(e.GetActorType()), SessionID: e.GetSessionId(), RequestID: e.GetRequestId(), SourceService: e.GetSourceService()}
			if !bytes.Equal(e.GetPreviousHash(), prev) || !bytes.Equal(chain.Hash(prev, f), e.GetHash()) {
				t.Fatalf("sequence %d does not recompute from what was exported", e.GetSequence())
			}
			prev = e.GetHash()
		}
		if !es[0].GetRedacted() || strings.Contains(es[0].GetMetadataJson(), "hunter2") || !strings.Contains(es[0].GetMetadataJson(), `"big":1e+21`) {
			t.Errorf("metadata_json of sequence 1: %s", es[0].GetMetadataJson())
		}

		ts := func(i int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(i) * time.Second)) }
		for name, r := range map[string]struct {
			req      *auditv1.ExportEventsRequest
			from, to int64
		}{
			"sequences":          {&auditv1.ExportEventsRequest{StartSequence: 10, EndSequence: 300}, 10, 300},
			"from a sequence":    {&auditv1.ExportEventsRequest{StartSequence: 590}, 590, n},
			"to a sequence":      {&auditv1.ExportEventsRequest{EndSequence: 3}, 1, 3},
			"one event":          {&auditv1.ExportEventsRequest{StartSequence: n, EndSequence: n}, n, n},
			"times":              {&auditv1.ExportEventsRequest{StartTime: ts(10), EndTime: ts(20)}, 11, 20},
			"from a time":        {&auditv1.ExportEventsRequest{StartTime: ts(595)}, 596, n},
			"to a time":          {&auditv1.ExportEventsRequest{EndTime: ts(2)}, 1, 2},
			"between two events": {&auditv1.ExportEventsRequest{StartTime: timestamppb.New(t0.Add(1500 * time.Millisecond)), EndTime: ts(4)}, 3, 4},
			"before the log":     {&auditv1.ExportEventsRequest{EndTime: ts(-5)}, 1, 0},
			"after the log":      {&auditv1.ExportEventsRequest{StartTime: ts(n + 5)}, n + 1, n},
			"after the head":     {&auditv1.ExportEventsRequest{StartSequence: n + 1}, n + 1, n},
		} {
			es, _, err := exported(ctx, client, r.req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if int64(len(es)) != r.to-r.from+1 || (len(es) > 0 && (es[0].GetSequence() != r.from || es[len(es)-1].GetSequence() != r.to)) {
				t.Errorf("%s: %d events, want %d..%d", name, len(es), r.from, r.to)
			}
		}

		for name, r := range map[string]struct {
			req  *auditv1.ExportEventsRequest
			code codes.Code
			says string
		}{
			"both kinds":      {&auditv1.ExportEventsRequest{StartSequence: 1, EndTime: ts(5)}, codes.InvalidArgument, "not both"},
			"negative":        {&auditv1.ExportEventsRequest{StartSequence: -1}, codes.InvalidArgument, "negative"},
			"reversed":        {&auditv1.ExportEventsRequest{StartSequence: 5, EndSequence: 4}, codes.InvalidArgument, "after end_sequence"},
			"reversed times":  {&auditv1.ExportEventsRequest{StartTime: ts(5), EndTime: ts(4)}, codes.InvalidArgument, "after end_time"},
			"beyond the head": {&auditv1.ExportEventsRequest{EndSequence: n + 1}, codes.FailedPrecondition, "beyond the chain head"},
			"bad time":        {&auditv1.ExportEventsRequest{StartTime: &timestamppb.Timestamp{Seconds: -1 << 60}}, codes.InvalidArgument, "start_time"},
		} {
			_, _, err := exported(ctx, client, r.req)
			if status.Code(err) != r.code || !strings.Contains(status.Convert(err).Message(), r.says) {
				t.Errorf("%s: %v, want %s saying %q", name, err, r.code, r.says)
			}
		}
	})
}

// Record times follow sequence order only up to the clocks of the callers (a clock stepped back makes
// them fall): a time range is still one unbroken run of sequences, found where record times cross its
// bounds, so that it verifies as a chain.
func TestExportTimeRangeAcrossAClockStep(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, _ store.Store, _ db.Dialect) {
		c := &clock{}
		s.now = c.now
		client := grpcClient(t, s)
		// Sequences 1-10 at t0+0..9 s; the clock then steps back 5 s: 11-20 at t0+5..14 s.
		record(t, s, c, 20, func(i int) time.Time {
			if i >= 10 {
				return t0.Add(time.Duration(i-5) * time.Second)
			}
			return t0.Add(time.Duration(i) * time.Second)
		})
		es, _, err := exported(context.Background(), client, &auditv1.ExportEventsRequest{
			StartTime: timestamppb.New(t0.Add(7 * time.Second)), EndTime: timestamppb.New(t0.Add(12 * time.Second))})
		if err != nil || len(es) == 0 {
			t.Fatalf("%d events, %v", len(es), err)
		}
		for i, e := range es {
			if i > 0 && e.GetSequence() != es[i-1].GetSequence()+1 {
				t.Fatalf("sequence %d follows %d", e.GetSequence(), es[i-1].GetSequence())
			}
		}
		first, last := es[0], es[len(es)-1]
		// The run starts where record times cross 7 s and ends before they cross 12 s.
		if first.GetRecordTime().AsTime().Before(t0.Add(7*time.Second)) || !last.GetRecordTime().AsTime().Before(t0.Add(12*time.Second)) {
			t.Errorf("sequences %d..%d, recorded %s..%s", first.GetSequence(), last.GetSequence(), first.GetRecordTime().AsTime(), last.GetRecordTime().AsTime())
		}
	})
}

// blockingStore holds ExportEvents' page reads after the first until released, and counts the reads.
type blockingStore struct {
	store.Store
	release chan struct{}
	pages   chan int64 // the After of each page read that waited
	ended   chan error // a waiting read ended by its context
}

func (b *blockingStore) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	if p.After > 0 && p.Limit > 1 && !p.Descending {
		b.pages <- p.After
		select {
		case <-b.release:
		case <-ctx.Done():
			b.ended <- ctx.Err()
			return nil, ctx.Err()
		}
	}
	return b.Store.EventList(ctx, p)
}

// A client that goes away ends the export: the page read under way sees the stream's context end, and
// the export returns with it (no further page is read for a stream nobody reads).
func TestExportStopsWhenTheClientLeaves(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		c := &clock{}
		s.now = c.now
		record(t, s, c, exportPageEvents+10, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) })
		b := &blockingStore{Store: st, release: make(chan struct{}), pages: make(chan int64, 10), ended: make(chan error, 1)}
		s.store = b
		client := grpcClient(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := client.ExportEvents(ctx, &auditv1.ExportEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if item, err := stream.Recv(); err != nil || item.GetEvent().GetSequence() != 1 {
			t.Fatalf("first item %v, %v", item, err)
		}
		select {
		case after := <-b.pages:
			if after != exportPageEvents {
				t.Fatalf("the second page starts after %d", after)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the second page was never read")
		}
		cancel()
		select {
		case err := <-b.ended:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("the page read ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the page read did not see the client leave")
		}
		if len(b.pages) != 0 {
			t.Fatalf("another page was read after the client left")
		}
	})
}

// appendCheckpoint stores a checkpoint of the current head (unsigned: only its place in exports is under
// test here; TestExportVerifiedByTheStandaloneVerifier checks real signatures).
func appendCheckpoint(t *testing.T, st store.Store) *store.Checkpoint {
	t.Helper()
	c, err := st.CheckpointAppend(context.Background(), func(cs store.ChainState) (*store.Checkpoint, error) {
		return &store.Checkpoint{Sequence: cs.HeadSeq, Hash: cs.HeadHash, Time: t0, Kind: int32(auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND),
			AnchorSeq: cs.AnchorSeq, AnchorHash: cs.AnchorHash, KeyID: "k", PublicKey: make([]byte, 32),
			SignedText: fmt.Sprintf("sequence: %d\n", cs.HeadSeq), Signature: make([]byte, 64)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The checkpoints follow the events: those whose sequence lies within the exported events, oldest first,
// every field as stored. After retention the export starts at the first retained event, whose link is
// the anchor a later checkpoint signs, and a range reaching below it is refused.
func TestExportCheckpointsAndRetention(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		c := &clock{}
		s.now = c.now
		client := grpcClient(t, s)
		ctx := context.Background()
		at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
		var signed []*store.Checkpoint
		for k := range 3 { // checkpoints at 20, 40 and 50
			n := []int{20, 20, 10}[k]
			done := []int{0, 20, 40}[k]
			record(t, s, c, n, func(i int) time.Time { return at(done + i) })
			signed = append(signed, appendCheckpoint(t, st))
		}
		for name, r := range map[string]struct {
			req  *auditv1.ExportEventsRequest
			want []*store.Checkpoint
		}{
			"whole log":       {&auditv1.ExportEventsRequest{}, signed},
			"around two":      {&auditv1.ExportEventsRequest{StartSequence: 20, EndSequence: 45}, signed[:2]},
			"between":         {&auditv1.ExportEventsRequest{StartSequence: 21, EndSequence: 39}, nil},
			"ending at one":   {&auditv1.ExportEventsRequest{EndSequence: 40}, signed[:2]},
			"by time, to 40":  {&auditv1.ExportEventsRequest{StartTime: timestamppb.New(at(30)), EndTime: timestamppb.New(at(40))}, signed[1:2]},
			"from the last":   {&auditv1.ExportEventsRequest{StartSequence: 50}, signed[2:]},
			"before the last": {&auditv1.ExportEventsRequest{EndSequence: 49}, signed[:2]},
		} {
			es, cs, err := exported(ctx, client, r.req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(cs) != len(r.want) {
				t.Fatalf("%s: %d checkpoints, want %d", name, len(cs), len(r.want))
			}
			for i, got := range cs {
				want := r.want[i]
				if got.GetId() != want.ID || got.GetSequence() != want.Sequence || !bytes.Equal(got.GetHash(), want.Hash) ||
					got.GetSignedText() != want.SignedText || !bytes.Equal(got.GetSignature(), want.Signature) ||
					got.GetKeyId() != want.KeyID || !got.GetTime().AsTime().Equal(want.Time) || got.GetKind() != auditv1.CheckpointKind(want.Kind) {
					t.Errorf("%s: checkpoint %d is %v, stored %+v", name, i, got, want)
				}
				if got.GetSequence() < es[0].GetSequence() || got.GetSequence() > es[len(es)-1].GetSequence() {
					t.Errorf("%s: checkpoint at %d outside the events %d..%d", name, got.GetSequence(), es[0].GetSequence(), es[len(es)-1].GetSequence())
				}
			}
		}

		cut, err := st.RetentionCut(ctx, at(15), 1000) // events 1-15 were recorded before 15 s
		if err != nil || cut.Through != 15 {
			t.Fatalf("retention: %+v, %v", cut, err)
		}
		anchored := appendCheckpoint(t, st)
		es, cs, err := exported(ctx, client, &auditv1.ExportEventsRequest{})
		if err != nil || len(es) != 35 || es[0].GetSequence() != 16 || !bytes.Equal(es[0].GetPreviousHash(), cut.AnchorHash) {
			t.Fatalf("after retention: %d events from %d, %v", len(es), es[0].GetSequence(), err)
		}
		if last := cs[len(cs)-1]; last.GetId() != anchored.ID || last.GetAnchorSequence() != 15 || !bytes.Equal(last.GetAnchorHash(), cut.AnchorHash) {
			t.Errorf("the checkpoint after retention: %v", last)
		}
		_, _, err = exported(ctx, client, &auditv1.ExportEventsRequest{StartSequence: 3})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "first retained event is 16") {
			t.Errorf("a range below the anchor: %v", err)
		}
	})
}

// TestExportsAreBounded: with maxConcurrentExports exports open (held by clients that stopped reading
// after their first page), one more is refused with RESOURCE_EXHAUSTED and a retry delay, not queued; once
// one ends, an export is accepted again.
func TestExportsAreBounded(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		c := &clock{}
		s.now = c.now
		record(t, s, c, exportPageEvents+10, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) })
		b := &blockingStore{Store: st, release: make(chan struct{}), pages: make(chan int64, 100), ended: make(chan error, 100)}
		s.store = b
		client := grpcClient(t, s)
		cancels := make([]context.CancelFunc, 0, maxConcurrentExports)
		for i := 0; i < maxConcurrentExports; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			cancels = append(cancels, cancel)
			stream, err := client.ExportEvents(ctx, &auditv1.ExportEventsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatalf("export %d: %v", i, err)
			}
		}
		stream, err := client.ExportEvents(context.Background(), &auditv1.ExportEventsRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		if wait, ok := ratelimit.RetryAfter(err); status.Code(err) != codes.ResourceExhausted || !ok || wait <= 0 {
			t.Fatalf("export beyond the bound: %v, want RESOURCE_EXHAUSTED with a retry delay", err)
		}
		cancels[0]()
		testutil.Eventually(t, 10*time.Second, "an export accepted once one ended", func() bool {
			st, err := client.ExportEvents(context.Background(), &auditv1.ExportEventsRequest{EndSequence: 1})
			if err != nil {
				return false
			}
			_, err = st.Recv()
			return err == nil
		})
		for _, cancel := range cancels[1:] {
			cancel()
		}
	})
}
