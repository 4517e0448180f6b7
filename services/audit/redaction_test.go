package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/storetest"
)

// TestSecretsNeverReachTheDatabase: secrets under secret-looking keys, at any depth, are replaced before
// the event is hashed and stored, through real gRPC on both backends. The answer says so; the stored row
// holds neither the secret nor a hash of it (the hash recomputes from the redacted text), the SQLite file
// and its WAL never hold the secret's bytes, and a retry with the same key and secret is a duplicate.
func TestSecretsNeverReachTheDatabase(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0"}))
			cfg.DB = dbtest.Config(t, d)
			client := serveWith(t, cfg)
			secrets := []string{"hunter2-pw-9f8e", "sk-live-7c1d2b", "refresh-1000.abcdef", "Bearer eyJhbGciOi.payload", "sid=5e3a9b"}
			meta, err := structpb.NewStruct(map[string]any{
				"stage":    "Won",
				"password": secrets[0],
				"request": map[string]any{
					"headers": map[string]any{"X-Api-Key": secrets[1], "Authorization": secrets[3], "Accept": "*/*"},
				},
				"steps": []any{map[string]any{"tool": "zoho", "refreshToken": secrets[2]}, []any{map[string]any{"Cookie": secrets[4]}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			req := &auditv1.RecordEventRequest{Actor: "agent-7", Action: "crm.login", Outcome: auditv1.Outcome_OUTCOME_SUCCESS,
				Metadata: meta, IdempotencyKey: "login-1"}
			resp, err := client.RecordEvent(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			ev := resp.GetEvent()
			if !ev.GetRedacted() || ev.GetMetadata().GetFields()["stage"].GetStringValue() != "Won" ||
				ev.GetMetadata().GetFields()["password"].GetStringValue() != "[REDACTED]" {
				t.Fatalf("answer: %v", ev)
			}
			again, err := client.RecordEvent(context.Background(), req)
			if err != nil || !again.GetDuplicate() || again.GetEvent().GetId() != ev.GetId() {
				t.Fatalf("retry with the same secret: %v %v", again, err)
			}
			plain, err := client.RecordEvent(context.Background(), &auditv1.RecordEventRequest{Actor: "agent-7", Action: "crm.read", Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
			if err != nil || plain.GetEvent().GetRedacted() {
				t.Fatalf("an event without secrets: %v %v", plain, err)
			}

			es := readAll(t, cfg)
			storetest.VerifyChain(t, es)
			if len(es) != 2 || !bytes.Equal(es[0].Hash, ev.GetHash()) {
				t.Fatalf("stored %d events", len(es))
			}
			row := fmt.Sprintf("%+v", *es[0])
			for _, s := range secrets {
				if bytes.Contains([]byte(row), []byte(s)) {
					t.Errorf("the stored row holds %q: %s", s, row)
				}
			}
			if d == db.SQLite {
				for _, f := range []string{cfg.DB.SQLitePath, cfg.DB.SQLitePath + "-wal"} {
					b, err := os.ReadFile(f)
					if err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
					for _, s := range secrets {
						if bytes.Contains(b, []byte(s)) {
							t.Errorf("%s holds %q", f, s)
						}
					}
					if f == cfg.DB.SQLitePath+"-wal" && !bytes.Contains(b, []byte("[REDACTED]")) && !bytes.Contains(mustRead(t, cfg.DB.SQLitePath), []byte("[REDACTED]")) {
						t.Error("the database files do not hold the redacted event: the search proves nothing")
					}
				}
			}
		})
	}
}

// TestRedactKeysComeFromTheEnvironment: AUDIT_REDACT_KEYS replaces the default keys; empty turns
// redaction off with "none", and a key without a letter or digit is refused.
func TestRedactKeysComeFromTheEnvironment(t *testing.T) {
	for value, want := range map[string]string{
		"ssn, bank-account": `{"SSN":"[REDACTED]","bankAccount":"[REDACTED]","password":"p","sergas.redacted":true}`,
		"none":              `{"SSN":"1","bankAccount":"2","password":"p"}`,
		"":                  `{"SSN":"1","bankAccount":"2","password":"[REDACTED]","sergas.redacted":true}`,
	} {
		client := serveAudit(t, db.SQLite, map[string]string{"AUDIT_REDACT_KEYS": value})
		meta, _ := structpb.NewStruct(map[string]any{"SSN": "1", "bankAccount": "2", "password": "p"})
		resp, err := client.RecordEvent(context.Background(), &auditv1.RecordEventRequest{Actor: "a", Action: "b",
			Outcome: auditv1.Outcome_OUTCOME_SUCCESS, Metadata: meta})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := resp.GetEvent().GetMetadata().MarshalJSON()
		if !jsonEqual(got, want) {
			t.Errorf("AUDIT_REDACT_KEYS=%q: %s, want %s", value, got, want)
		}
	}
}

func TestRedactKeysWithoutLettersAreRefused(t *testing.T) {
	env := config.FromMap(map[string]string{"AUDIT_REDACT_KEYS": "password,--"})
	audit.LoadConfig(env)
	if env.Err() == nil || !strings.Contains(env.Err().Error(), "AUDIT_REDACT_KEYS") {
		t.Fatalf("got %v", env.Err())
	}
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
