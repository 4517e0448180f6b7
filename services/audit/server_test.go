package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

// onBothBackends runs fn against a server over a fresh SQLite file and a fresh PostgreSQL schema.
func onBothBackends(t *testing.T, fn func(t *testing.T, s *Server, st store.Store, dialect db.Dialect)) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			h := dbtest.Open(t, d, "audit")
			var st store.Store
			if d == db.SQLite {
				st = sqlite.New(h.SQLite)
			} else {
				st = postgres.New(h.Postgres)
			}
			fn(t, NewServer(st, DefaultLimits), st, d)
		})
	}
}

func as(principal string) context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{ID: principal, Scopes: []string{auth.ScopeAuditWrite}})
}

func request(meta map[string]any) *auditv1.RecordEventRequest {
	m, err := structpb.NewStruct(meta)
	if err != nil {
		panic(err)
	}
	return &auditv1.RecordEventRequest{Actor: "agent-7", Action: "crm.deal.update", Resource: "Deals/42",
		Outcome: auditv1.Outcome_OUTCOME_SUCCESS, Metadata: m}
}

// nested returns metadata whose deepest value sits levels deep (the metadata object is level 1), in
// objects or in arrays.
func nested(levels int, arrays bool) *structpb.Struct {
	var v *structpb.Value = structpb.NewStringValue("bottom")
	for range levels - 1 {
		if arrays {
			v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
		} else {
			v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": v}})
		}
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{"a": v}}
}

func wantInvalid(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("%s: got %v, want InvalidArgument", what, err)
	}
}

func count(t *testing.T, st store.Store) int {
	t.Helper()
	es, err := st.EventList(context.Background(), store.EventListParams{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestRecordRefusesWhatItCouldNotServeBack(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		ctx := as("apikey:w1")
		for _, arrays := range []bool{false, true} {
			req := request(nil)
			req.Metadata = nested(maxMetadataDepth, arrays)
			if _, err := s.RecordEvent(ctx, req); err != nil {
				t.Fatalf("metadata %d levels deep (arrays=%v): %v", maxMetadataDepth, arrays, err)
			}
			for _, levels := range []int{maxMetadataDepth + 1, 3333} {
				req.Metadata = nested(levels, arrays)
				_, err := s.RecordEvent(ctx, req)
				wantInvalid(t, fmt.Sprintf("metadata %d levels deep (arrays=%v)", levels, arrays), err)
			}
		}
		bad := map[string]*auditv1.RecordEventRequest{}
		add := func(name string, change func(r *auditv1.RecordEventRequest)) {
			r := request(map[string]any{"deal": "42"})
			change(r)
			bad[name] = r
		}
		add("NUL in actor", func(r *auditv1.RecordEventRequest) { r.Actor = "agent\x007" })
		add("NUL in action", func(r *auditv1.RecordEventRequest) { r.Action = "a\x00" })
		add("NUL in resource", func(r *auditv1.RecordEventRequest) { r.Resource = "r\x00" })
		add("NUL in idempotency key", func(r *auditv1.RecordEventRequest) { r.IdempotencyKey = "k\x00" })
		add("NUL in metadata value", func(r *auditv1.RecordEventRequest) { r.Metadata.Fields["x"] = structpb.NewStringValue("a\x00b") })
		add("NUL in metadata key", func(r *auditv1.RecordEventRequest) { r.Metadata.Fields["x\x00"] = structpb.NewBoolValue(true) })
		add("NUL in nested metadata", func(r *auditv1.RecordEventRequest) {
			r.Metadata.Fields["x"] = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("\x00")}})
		})
		add("invalid UTF-8 in metadata", func(r *auditv1.RecordEventRequest) { r.Metadata.Fields["x"] = structpb.NewStringValue("\xff") })
		add("line break in actor", func(r *auditv1.RecordEventRequest) { r.Actor = "agent-7\nagent-8" })
		add("escape in action", func(r *auditv1.RecordEventRequest) { r.Action = "crm.\x1b[31mdelete" })
		add("C1 control in resource", func(r *auditv1.RecordEventRequest) { r.Resource = "Deals/\u008542" })
		add("reserved metadata key", func(r *auditv1.RecordEventRequest) { r.Metadata.Fields[unreadableKey] = structpb.NewStringValue("x") })
		add("metadata over 64 KiB", func(r *auditv1.RecordEventRequest) {
			r.Metadata.Fields["x"] = structpb.NewStringValue(strings.Repeat("x", maxMetadataBytes))
		})
		add("year 1", func(r *auditv1.RecordEventRequest) {
			r.OccurTime = timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
		})
		add("beyond year 9999", func(r *auditv1.RecordEventRequest) { r.OccurTime = &timestamppb.Timestamp{Seconds: 1 << 40} })
		add("too far ahead", func(r *auditv1.RecordEventRequest) { r.OccurTime = timestamppb.New(time.Now().Add(time.Hour)) })
		add("too old", func(r *auditv1.RecordEventRequest) {
			r.OccurTime = timestamppb.New(time.Now().Add(-31 * 24 * time.Hour))
		})
		for name, r := range bad {
			_, err := s.RecordEvent(ctx, r)
			wantInvalid(t, name, err)
		}
		if n := count(t, st); n != 2 {
			t.Fatalf("%d events stored, want only the 2 valid ones", n)
		}
		// Within the window and plain labels are fine.
		r := request(map[string]any{"note": "line\nbreaks and\ttabs are fine in metadata"})
		r.Actor, r.OccurTime = "agent 7 (Zoho) ünïcode", timestamppb.New(time.Now().Add(-29*24*time.Hour))
		if _, err := s.RecordEvent(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMetadataDepthLimitFitsTheReaders: an event at the depth limit, inside the largest message that
// carries events, decodes with the default limits of every reader: the gRPC codec (binary protobuf),
// the gateway (protojson) and encoding/json. At 3,333 levels the binary decode of a response fails.
func TestMetadataDepthLimitFitsTheReaders(t *testing.T) {
	for _, arrays := range []bool{false, true} {
		for _, c := range []struct {
			levels int
			ok     bool
		}{{maxMetadataDepth, true}, {3333, false}} {
			resp := &auditv1.ListEventsResponse{Events: []*auditv1.Event{{Metadata: nested(c.levels, arrays)}}}
			b, err := proto.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			binErr := proto.Unmarshal(b, &auditv1.ListEventsResponse{})
			jb, err := protojson.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			jsonErr := protojson.Unmarshal(jb, &auditv1.ListEventsResponse{})
			var anything any
			stdErr := json.Unmarshal(jb, &anything)
			if c.ok && (binErr != nil || jsonErr != nil || stdErr != nil) {
				t.Errorf("%d levels (arrays=%v): binary %v, protojson %v, encoding/json %v", c.levels, arrays, binErr, jsonErr, stdErr)
			}
			if !c.ok && !arrays && binErr == nil {
				t.Errorf("%d levels decode: the readers' limits changed, revisit maxMetadataDepth", c.levels)
			}
		}
	}
}

// TestStoredRowsAlwaysServe: rows that break today's write rules (written before them, or changed in
// the database) are still served, as GetEvent and on every page, in responses any client decodes.
func TestStoredRowsAlwaysServe(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, d db.Dialect) {
		ctx := context.Background()
		deep := strings.Repeat(`{"a":`, 3333) + "1" + strings.Repeat("}", 3333)
		rows := map[string]*store.Event{
			"3,333 levels": storetest.NewEvent("agent-1", "old.deep", time.Now()),
			"not JSON":     storetest.NewEvent("agent-1", "old.garbage", time.Now()),
			"JSON array":   storetest.NewEvent("agent-1", "old.array", time.Now()),
		}
		rows["3,333 levels"].Metadata = deep
		rows["not JSON"].Metadata = `{"unterminated`
		rows["JSON array"].Metadata = `[1,2]`
		if d == db.SQLite { // PostgreSQL cannot store such text at all
			e := storetest.NewEvent("agent-\xff", "old.bytes", time.Now())
			e.Metadata = "{\"a\":\"\xff\"}"
			rows["invalid UTF-8"] = e
		}
		for _, e := range rows {
			if _, _, err := st.EventAppend(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		for name, e := range rows {
			got, err := s.GetEvent(ctx, &auditv1.GetEventRequest{Id: e.ID})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m := got.GetEvent().GetMetadata().GetFields()
			if len(m) != 1 || m[unreadableKey].GetStringValue() != strings.ToValidUTF8(e.Metadata, "\uFFFD") {
				t.Errorf("%s: metadata shown as %v", name, m)
			}
			decodes(t, name, got)
		}
		page, err := s.ListEvents(ctx, &auditv1.ListEventsRequest{})
		if err != nil || len(page.GetEvents()) != len(rows) {
			t.Fatalf("list: %d events, %v", len(page.GetEvents()), err)
		}
		decodes(t, "page", page)
	})
}

// decodes checks that m survives the round trips a client makes: binary (gRPC) and protojson (REST).
func decodes(t *testing.T, what string, m proto.Message) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err == nil {
		err = proto.Unmarshal(b, m.ProtoReflect().New().Interface())
	}
	if err != nil {
		t.Errorf("%s: binary round trip: %v", what, err)
	}
	jb, err := protojson.Marshal(m)
	if err == nil {
		err = protojson.Unmarshal(jb, m.ProtoReflect().New().Interface())
	}
	if err != nil {
		t.Errorf("%s: protojson round trip: %v", what, err)
	}
}

func TestPrincipalIsRecorded(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, st store.Store, _ db.Dialect) {
		got, err := s.RecordEvent(as("jwt:https://issuer.example#agent-7"), request(nil))
		if err != nil || got.GetEvent().GetPrincipal() != "jwt:https://issuer.example#agent-7" {
			t.Fatalf("recorded %v, %v", got, err)
		}
		anon, err := s.RecordEvent(context.Background(), request(nil))
		if err != nil || anon.GetEvent().GetPrincipal() != "anonymous" {
			t.Fatalf("without authentication: %v, %v", anon, err)
		}
		es, err := st.EventList(context.Background(), store.EventListParams{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		storetest.VerifyChain(t, es)
	})
}

func TestGetEventFindsAnyCaseOfItsID(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, _ store.Store, _ db.Dialect) {
		rec, err := s.RecordEvent(as("apikey:w1"), request(nil))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{rec.GetEvent().GetId(), strings.ToUpper(rec.GetEvent().GetId())} {
			got, err := s.GetEvent(context.Background(), &auditv1.GetEventRequest{Id: id})
			if err != nil || got.GetEvent().GetId() != rec.GetEvent().GetId() {
				t.Errorf("GetEvent(%s): %v %v", id, got, err)
			}
		}
		for _, id := range []string{"not-a-uuid", "{" + rec.GetEvent().GetId() + "}", "a\x00b"} {
			_, err := s.GetEvent(context.Background(), &auditv1.GetEventRequest{Id: id})
			wantInvalid(t, id, err)
		}
	})
}

func TestListRefusesUnstorableFiltersAndTakesAnyValidTime(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, _ store.Store, _ db.Dialect) {
		if _, err := s.RecordEvent(as("apikey:w1"), request(nil)); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for name, req := range map[string]*auditv1.ListEventsRequest{
			"NUL actor":          {Actor: "a\x00"},
			"invalid UTF-8":      {Resource: "\xff"},
			"NUL action":         {Action: "\x00"},
			"start out of range": {StartTime: &timestamppb.Timestamp{Seconds: -1 << 40}},
			"end out of range":   {EndTime: &timestamppb.Timestamp{Seconds: 1 << 40}},
		} {
			_, err := s.ListEvents(ctx, req)
			wantInvalid(t, name, err)
		}
		got, err := s.ListEvents(ctx, &auditv1.ListEventsRequest{
			StartTime: timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)),
			EndTime:   timestamppb.New(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)),
		})
		if err != nil || len(got.GetEvents()) != 1 {
			t.Fatalf("years 1 to 9999: %v %v", got, err)
		}
	})
}

// TestLargePagesEndEarly: a page of large events ends before it outgrows what clients receive by
// default (4 MiB), and the next pages carry the rest.
func TestLargePagesEndEarly(t *testing.T) {
	onBothBackends(t, func(t *testing.T, s *Server, _ store.Store, _ db.Dialect) {
		ctx := as("apikey:w1")
		const n = 30
		// Numbers cost more as protobuf (11 bytes) than as JSON (2): 60 KiB of JSON, ~330 KiB of protobuf.
		nums := make([]any, 30000)
		for i := range nums {
			nums[i] = 0
		}
		for range n {
			if _, err := s.RecordEvent(ctx, request(map[string]any{"n": nums})); err != nil {
				t.Fatal(err)
			}
		}
		seen := 0
		req := &auditv1.ListEventsRequest{PageSize: 1000}
		for range n + 1 {
			page, err := s.ListEvents(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if size := proto.Size(page); size > 4<<20 {
				t.Fatalf("page of %d events is %d bytes", len(page.GetEvents()), size)
			}
			seen += len(page.GetEvents())
			if req.PageToken = page.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		if seen != n {
			t.Fatalf("pages held %d events, want %d", seen, n)
		}
	})
}

func TestOccurTimeWindowIsConfigurable(t *testing.T) {
	cfg := LoadConfig(config.FromMap(map[string]string{"AUDIT_MAX_CLOCK_SKEW": "1m", "AUDIT_MAX_EVENT_AGE": "2h"}))
	if cfg.Limits != (Limits{MaxClockSkew: time.Minute, MaxEventAge: 2 * time.Hour}) {
		t.Fatalf("limits %+v", cfg.Limits)
	}
	env := config.FromMap(map[string]string{"AUDIT_MAX_EVENT_AGE": "0s"})
	LoadConfig(env)
	if env.Err() == nil || !strings.Contains(env.Err().Error(), "AUDIT_MAX_EVENT_AGE") {
		t.Fatalf("zero event age accepted: %v", env.Err())
	}
	if LoadConfig(config.FromMap(nil)).Limits != DefaultLimits {
		t.Fatal("defaults")
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &Server{limits: cfg.Limits, now: func() time.Time { return now }}
	for _, c := range []struct {
		at time.Time
		ok bool
	}{
		{now.Add(time.Minute), true}, {now.Add(time.Minute + time.Microsecond), false},
		{now.Add(-2 * time.Hour), true}, {now.Add(-2*time.Hour - time.Microsecond), false},
	} {
		_, err := s.occurTime(timestamppb.New(c.at), now)
		if (err == nil) != c.ok {
			t.Errorf("occur %s (now %s): %v", c.at, now, err)
		}
	}
}
