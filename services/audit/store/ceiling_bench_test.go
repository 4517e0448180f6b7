package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
)

// secondaryIndexes are the events table's indexes that serve ListEvents filters (every index but the
// primary key and the idempotency keys' unique index).
var secondaryIndexes = []string{"events_actor", "events_action", "events_resource", "events_occur_time", "events_outcome",
	"events_actor_type", "events_session_id", "events_request_id", "events_source_service"}

// BenchmarkCeilingInsert measures what the bare database gives an append, without the service: sealed
// events shaped like the audit benchmark's, inserted by the driver's own InsertEvents (the statement
// every append runs) and followed by MoveHead, one transaction per batch, on a migrated store. No RPC,
// no hashing, no idempotency lookup, no redaction: whatever the service does, its appends on this
// machine cannot go faster than these rows/s. Shapes: "one caller" puts one actor, session and
// sequence of request ids in a batch (a RecordEvents call); "64 callers" interleaves 64 of them (a
// group commit of single RecordEvent calls). "no filter index" drops the nine indexes that serve
// ListEvents' filters, which the audit issue requires, to show the table alone.
func BenchmarkCeilingInsert(b *testing.B) {
	for _, d := range dbtest.Dialects {
		for _, shape := range []struct {
			name    string
			callers int64
		}{{"one caller", 1}, {"64 callers", 64}} {
			for _, batch := range []int{100, 1000} {
				for _, drop := range []bool{false, true} {
					indexes := "every index"
					if drop {
						indexes = "no filter index"
					}
					b.Run(fmt.Sprintf("%s/%s/batch=%d/%s", d, shape.name, batch, indexes), func(b *testing.B) {
						ceilingInsert(b, d, shape.callers, batch, drop)
					})
				}
			}
		}
	}
}

func ceilingInsert(b *testing.B, d db.Dialect, callers int64, batch int, drop bool) {
	ctx := context.Background()
	c := dbtest.Config(b, d)
	c.SQLiteCacheSize = -64000 // the services' default
	h, err := db.Open(ctx, c, "audit", true)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	var drv store.Driver
	exec := func(q string) error { _, err := h.SQLite.Write.ExecContext(ctx, q); return err }
	if d == db.Postgres {
		drv = postgres.NewDriver(h.Postgres)
		exec = func(q string) error { _, err := h.Postgres.Pool.Exec(ctx, q); return err }
	} else {
		drv = sqlite.NewDriver(h.SQLite)
	}
	if drop {
		for _, ix := range secondaryIndexes {
			if err := exec("DROP INDEX " + ix); err != nil {
				b.Fatal(err)
			}
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	hash := sha256.Sum256([]byte("ceiling"))
	rows := make([]*store.Event, b.N*batch)
	for i := range rows {
		seq := int64(i) + 1
		caller := (seq / int64(batch)) % 64
		if callers > 1 {
			caller = seq % callers
		}
		rows[i] = &store.Event{Sequence: seq, ID: fmt.Sprintf("0190b6d0-0000-7000-8000-%012d", seq), OccurTime: now, RecordTime: now,
			Actor: fmt.Sprintf("agent-%03d", caller), Action: "crm.deal.update", Resource: fmt.Sprintf("Deals/%d", seq), Outcome: 1,
			Metadata:       `{"access_token":"[REDACTED]","amount":12500,"fields":["Stage","Amount"],"module":"Deals","sergas.redacted":true,"tool":"zoho.crm.update_record"}`,
			IdempotencyKey: fmt.Sprintf("key-%d", seq), Principal: "apikey:bench", HashVersion: 3, PreviousHash: hash[:], Hash: hash[:],
			ActorType: 1, SessionID: fmt.Sprintf("lg-session-%d", caller), RequestID: fmt.Sprintf("req-%d-%d", caller, seq), SourceService: "agent-runtime"}
	}
	b.ResetTimer()
	start, busy := time.Now(), machineBusy()
	for i := range b.N {
		es := rows[i*batch : (i+1)*batch]
		if err := drv.AppendTx(ctx, func(tx store.AppendTx) error {
			if _, _, err := tx.HeadForUpdate(ctx); err != nil {
				return err
			}
			if err := tx.InsertEvents(ctx, es); err != nil {
				return err
			}
			last := es[len(es)-1]
			return tx.MoveHead(ctx, last.Sequence, last.Hash)
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "rows/s")
	b.ReportMetric(float64((machineBusy()-busy).Microseconds())/float64(b.N*batch), "machine-CPU-µs/row")
	b.ReportMetric(0, "ns/op")
}

// machineBusy is the CPU time every process on the machine has spent so far (user, nice, system, irq,
// softirq and steal from the first line of /proc/stat, in Linux's 10 ms ticks): on a quiet machine,
// this benchmark's and the database server's together. 0 when unknown.
func machineBusy() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait skipped) irq softirq steal
		n, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
