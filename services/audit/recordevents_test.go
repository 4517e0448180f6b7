package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/storetest"
)

func batchEvent(action, key string) *auditv1.RecordEventRequest {
	return &auditv1.RecordEventRequest{Actor: "agent-7", Action: action, Outcome: auditv1.Outcome_OUTCOME_SUCCESS, IdempotencyKey: key}
}

// TestRecordEventsThroughGRPC: on both backends, through real gRPC beside the group committer, a batch
// of 1,000 is answered event by event with the sequence and hash it was stored with; keys behave as for
// RecordEvent inside and across calls; an invalid event, a reused key or a wrong size fails the whole call
// naming the event, and stores nothing; metadata is redacted as for RecordEvent.
func TestRecordEventsThroughGRPC(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0"}))
			cfg.DB = dbtest.Config(t, d)
			client := serveWith(t, cfg)
			ctx := context.Background()
			if _, err := client.RecordEvent(ctx, batchEvent("single", "k-0")); err != nil {
				t.Fatal(err)
			}

			secret, _ := structpb.NewStruct(map[string]any{"apiKey": "sk-batch-secret"})
			var evs []*auditv1.RecordEventRequest
			for i := range 996 {
				evs = append(evs, batchEvent(fmt.Sprintf("bulk.%d", i), ""))
			}
			evs[5].Metadata = secret
			evs = append(evs, batchEvent("single", "k-0"), batchEvent("new", "k-1"), batchEvent("new", "k-1"), batchEvent("new", "k-2"))
			resp, err := client.RecordEvents(ctx, &auditv1.RecordEventsRequest{Events: evs})
			if err != nil {
				t.Fatal(err)
			}
			rs := resp.GetResults()
			if len(rs) != 1000 {
				t.Fatalf("%d results", len(rs))
			}
			for i, r := range rs[:996] {
				if r.GetDuplicate() || r.GetEvent().GetSequence() != int64(i+2) || r.GetEvent().GetAction() != evs[i].GetAction() || len(r.GetEvent().GetHash()) != 32 {
					t.Fatalf("result %d: %v", i, r)
				}
			}
			if !rs[5].GetEvent().GetRedacted() || strings.Contains(rs[5].String(), "sk-batch-secret") {
				t.Errorf("metadata was not redacted: %v", rs[5])
			}
			if !rs[996].GetDuplicate() || rs[996].GetEvent().GetSequence() != 1 {
				t.Errorf("key used by an earlier call: %v", rs[996])
			}
			if rs[997].GetDuplicate() || !rs[998].GetDuplicate() || rs[998].GetEvent().GetId() != rs[997].GetEvent().GetId() || rs[999].GetEvent().GetSequence() != 999 {
				t.Errorf("keys inside the call: %v / %v / %v", rs[997], rs[998], rs[999])
			}

			for name, c := range map[string]struct {
				events []*auditv1.RecordEventRequest
				code   codes.Code
				says   string
			}{
				"invalid event":          {[]*auditv1.RecordEventRequest{batchEvent("ok", ""), batchEvent("ok", ""), {Actor: "agent-7"}}, codes.InvalidArgument, "events[2]: action"},
				"key of an earlier call": {[]*auditv1.RecordEventRequest{batchEvent("ok", ""), batchEvent("other", "k-1")}, codes.AlreadyExists, "events[1]"},
				"key reused in the call": {[]*auditv1.RecordEventRequest{batchEvent("a", "k-9"), batchEvent("b", "k-9")}, codes.AlreadyExists, "events[1]"},
				"empty":                  {nil, codes.InvalidArgument, "1 to 1000"},
				"1,001 events":           {make([]*auditv1.RecordEventRequest, 1001), codes.InvalidArgument, "1 to 1000"},
			} {
				_, err := client.RecordEvents(ctx, &auditv1.RecordEventsRequest{Events: c.events})
				if st := status.Convert(err); st.Code() != c.code || !strings.Contains(st.Message(), c.says) {
					t.Errorf("%s: %v, want %s naming %q", name, err, c.code, c.says)
				}
			}
			es := readAll(t, cfg)
			storetest.VerifyChain(t, es)
			if len(es) != 999 || !bytes.Equal(es[998].Hash, rs[999].GetEvent().GetHash()) {
				t.Fatalf("stored %d events, want 999 (a refused call stored something)", len(es))
			}
		})
	}
}
