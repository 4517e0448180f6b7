package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

// benchVerifyEvents is the size of the log BenchmarkVerifyChain verifies.
const benchVerifyEvents = 200_000

// BenchmarkVerifyChain measures VerifyChain over a whole log of benchVerifyEvents events (a checkpoint
// every 10,000), through gRPC, on each backend, in events verified per second:
//
//	go test -run '^$' -bench VerifyChain -benchtime 3x ./services/audit/
//
// The log is written through the store in batches before the clock starts.
func BenchmarkVerifyChain(b *testing.B) {
	for _, d := range dbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0",
				"AUDIT_SIGNING_KEY": tamperKeyFile(b), "AUDIT_CHECKPOINT_INTERVAL": "0", "AUDIT_RETENTION_DAYS": "0"}))
			cfg.DB = dbtest.Config(b, d)
			seedLog(b, cfg.DB, benchVerifyEvents)
			client := serveWith(b, cfg)
			b.ResetTimer()
			for range b.N {
				v, err := client.VerifyChain(context.Background(), &auditv1.VerifyChainRequest{})
				if err != nil || !v.GetValid() || v.GetEventsChecked() != benchVerifyEvents || v.GetCheckpointsChecked() != benchVerifyEvents/10_000 {
					b.Fatalf("%v %v", v, err)
				}
			}
			b.ReportMetric(float64(benchVerifyEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// seedLog appends n events through the store, 1,000 per transaction.
func seedLog(b testing.TB, cfg db.Config, n int) {
	b.Helper()
	h, err := db.Open(context.Background(), cfg, "audit", true)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var st store.Store
	if h.SQLite != nil {
		st = sqlite.New(h.SQLite)
	} else {
		st = postgres.New(h.Postgres)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; done += 1000 {
		ps := make([]store.Pending, 1000)
		for i := range ps {
			ps[i] = store.Pending{Event: storetest.NewEvent("agent-7", fmt.Sprintf("crm.deal.update.%d", done+i), time.Now())}
		}
		if _, err := st.Append(context.Background(), ps); err != nil {
			b.Fatal(err)
		}
		if (done+1000)%10_000 != 0 {
			continue
		}
		// A checkpoint as the service signs it, so that VerifyChain checks it whole.
		if _, err := st.CheckpointAppend(context.Background(), func(cs store.ChainState) (*store.Checkpoint, error) {
			c := &store.Checkpoint{Sequence: cs.HeadSeq, Hash: cs.HeadHash, Time: time.Now().UTC().Truncate(time.Microsecond),
				Kind: int32(auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND), AnchorSeq: cs.AnchorSeq, AnchorHash: cs.AnchorHash,
				KeyID: audit.KeyID(pub), PublicKey: pub}
			c.SignedText = audit.SignedText(c)
			c.Signature = ed25519.Sign(priv, []byte(c.SignedText))
			return c, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
