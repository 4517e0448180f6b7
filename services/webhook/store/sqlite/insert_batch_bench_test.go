package sqlite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/sqlite"
)

// BenchmarkInsertBatch measures EventInsertBatch per event at the group committer's batch sizes (1 KiB bodies).
func BenchmarkInsertBatch(b *testing.B) {
	for _, size := range []int{1, 4, 8, 16, 64, 128} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			s := sqlite.New(dbtest.Open(b, db.SQLite, "webhook").SQLite)
			pad := strings.Repeat("x", 900)
			n := 0
			b.ResetTimer()
			for range b.N {
				es := make([]*store.Event, size)
				for i := range es {
					n++
					es[i] = &store.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "bench", DedupeKey: fmt.Sprintf("id:%d\nsha256:%x", n, n*7919),
						Status: store.StatusPending, ContentType: "application/json", Payload: []byte(`{"id":"` + fmt.Sprint(n) + `","pad":"` + pad + `"}`),
						Headers:     []store.Header{{Name: "Content-Type", Values: []string{"application/json"}}, {Name: "X-Zoho-Event-Id", Values: []string{fmt.Sprint(n)}}},
						ReceiveTime: time.Now().UTC().Truncate(time.Microsecond), SenderAddress: "127.0.0.1"}
				}
				if _, err := s.EventInsertBatch(context.Background(), es); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/event")
		})
	}
}
