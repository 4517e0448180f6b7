package dbstats_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit"
	auditstore "github.com/sergas/core/services/audit/store"
	auditpg "github.com/sergas/core/services/audit/store/postgres"
	auditsqlite "github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/token"
	"github.com/sergas/core/services/webhook"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestServicesExportDatabaseGauges opens the three services as their commands do, writes through them
// (and through the audit store on the same database), and scrapes /metrics as the services serve it
// (promhttp over the default registry): the database gauges carry the figures just written.
func TestServicesExportDatabaseGauges(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			env := map[string]string{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir()}
			if d == db.Postgres {
				url := dbtest.PostgresURL(t)
				env["DATABASE_URL"] = url
				for _, s := range []string{"TOKEN", "AUDIT", "WEBHOOK"} {
					env[s+"_DATABASE_SCHEMA"] = dbtest.NewSchema(t, url)
				}
			}
			cenv := config.FromMap(env)
			tcfg, acfg, wcfg := token.LoadConfig(cenv), audit.LoadConfig(cenv), webhook.LoadConfig(cenv)
			if err := cenv.Err(); err != nil {
				t.Fatal(err)
			}
			tsvc, err := token.Open(ctx, tcfg, quietLog, nil)
			if err != nil {
				t.Fatal(err)
			}
			// A closure keeps the service itself reachable: its gauges last as long as it does.
			defer func() { tsvc.Close() }()
			asvc, err := audit.Open(ctx, acfg, quietLog)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { asvc.Close() }()
			wsvc, err := webhook.Open(ctx, wcfg, quietLog)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { wsvc.Close() }()

			// token: two connections, one refused for good (as a refresh that fails permanently leaves it).
			for _, id := range []string{"crm-1", "crm-2"} {
				if _, err := tsvc.CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: id,
					AccessToken: "at", RefreshToken: "rt", ExpiresIn: durationpb.New(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			th, err := db.Open(ctx, tcfg.DB, "token", false)
			if err != nil {
				t.Fatal(err)
			}
			defer th.Close()
			sqldb := th.SQL()
			if _, err := sqldb.ExecContext(ctx, "UPDATE connections SET status = 2 WHERE connection_id = 'crm-2'"); err != nil {
				t.Fatal(err)
			}
			if th.Postgres != nil {
				sqldb.Close()
			}

			// audit: five events and a checkpoint at the third.
			ah, err := db.Open(ctx, acfg.DB, "audit", false)
			if err != nil {
				t.Fatal(err)
			}
			defer ah.Close()
			var as auditstore.Store
			if ah.SQLite != nil {
				as = auditsqlite.New(ah.SQLite)
			} else {
				as = auditpg.New(ah.Postgres)
			}
			cpTime := time.Now().UTC().Truncate(time.Second)
			for i := range 5 {
				now := time.Now().UTC().Truncate(time.Microsecond)
				if _, err := as.Append(ctx, []auditstore.Pending{{Event: &auditstore.Event{ID: uuid.NewString(), OccurTime: now, RecordTime: now,
					Actor: "agent-1", Action: "crm.deal.update", Resource: "Deals/1", Outcome: 1, Metadata: "{}", Principal: "apikey:test"}}}); err != nil {
					t.Fatal(err)
				}
				if i == 2 {
					if _, err := as.CheckpointAppend(ctx, func(st auditstore.ChainState) (*auditstore.Checkpoint, error) {
						return &auditstore.Checkpoint{Sequence: st.HeadSeq, Hash: st.HeadHash, Time: cpTime, Kind: 1, AnchorSeq: st.AnchorSeq,
							AnchorHash: st.AnchorHash, KeyID: "00000000000000ff", PublicKey: make([]byte, 32), SignedText: "fixture", Signature: make([]byte, 64)}, nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			}

			m := scrape(t)
			for _, svc := range []string{"token", "audit", "webhook"} {
				if v, ok := m.get("sergas_db_size_bytes", "service", svc); !ok || v <= 0 {
					t.Errorf("sergas_db_size_bytes{service=%q} = %v (present %v)", svc, v, ok)
				}
				_, free := m.get("sergas_db_free_bytes", "service", svc)
				wal, walOK := m.get("sergas_db_wal_bytes", "service", svc)
				if d == db.SQLite && (!free || !walOK || wal <= 0) {
					t.Errorf("%s: free bytes present %v, WAL %v (present %v): want both, the WAL holding the writes", svc, free, wal, walOK)
				}
				if d == db.Postgres && (free || walOK) {
					t.Errorf("%s: SQLite-only gauges on PostgreSQL", svc)
				}
			}
			for _, c := range []struct {
				name   string
				labels []string
				want   float64
			}{
				{"audit_chain_head_sequence", nil, 5},
				{"audit_last_checkpoint_sequence", nil, 3},
				{"audit_last_checkpoint_timestamp_seconds", nil, float64(cpTime.Unix())},
				{"token_connections_needing_reauthorization", nil, 1},
				{"token_connections", []string{"status", "active"}, 1},
				{"token_connections", []string{"status", "needs_reauthorization"}, 1},
			} {
				if v, ok := m.get(c.name, c.labels...); !ok || v != c.want {
					t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
				}
			}
		})
	}
}

// metrics is one scrape, parsed.
type metrics map[string]*dto.MetricFamily

func scrape(t *testing.T) metrics {
	t.Helper()
	srv := httptest.NewServer(promhttp.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %s\n%s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// get returns the value of the series of name with the label pair given (name, value), if any.
func (m metrics) get(name string, label ...string) (float64, bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		match := len(label) == 0
		for _, l := range s.GetLabel() {
			if len(label) == 2 && l.GetName() == label[0] && l.GetValue() == label[1] {
				match = true
			}
		}
		if match {
			return s.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
