package webhook

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/ratelimit"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/store/sqlite"
	"github.com/sergas/core/services/webhook/storetest"
)

func init() { sourcesFileInterval = 0 } // tests see a changed sources file on the next delivery

// testSourcesFile is one source of each scheme; the server's clock is verifyNow.
func testSourcesFile() string {
	return fmt.Sprintf(`{"sources": [
  {"name": "github", "scheme": "hmac", "secrets": [%q, %q],
   "hmac": {"header": "X-Hub-Signature-256", "prefix": "sha256=", "event_id_header": "X-GitHub-Delivery"}},
  {"name": "stripe", "scheme": "hmac", "secrets": [%q], "hmac": {"header": "Stripe-Signature", "timestamped": true}},
  {"name": "svix", "scheme": "standard-webhooks", "secrets": [%q, %q]},
  {"name": "zoho", "scheme": "zoho-crm", "zoho_crm": {"channels": {"1000000068001": "tok-1"}}},
  {"name": "small", "scheme": "none", "body_limit": 16, "rate_limit": {"per_second": 1, "burst": 2}}
]}`, hmacSecretOld, hmacSecretNew, hmacSecretNew, whsec('o'), whsec('n'))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startWithSources serves a store of dialect d with the sources of testSourcesFile and returns the
// harness and a function that runs SQL on the store's database.
func startWithSources(t *testing.T, d db.Dialect, env map[string]string, opts ...Option) (*harness, func(q string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sources.json")
	writeFile(t, path, testSourcesFile())
	env["WEBHOOK_SOURCES_FILE"] = path
	if _, ok := env["WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND"]; !ok {
		env["WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND"] = "0"
	}
	st, exec := storeWithSQL(t, d)
	return startServiceOn(t, st, env, opts...), exec
}

func storeWithSQL(t *testing.T, d db.Dialect) (store.Store, func(q string)) {
	h := dbtest.Open(t, d, "webhook")
	if d == db.SQLite {
		return sqlite.New(h.SQLite), func(q string) {
			if err := h.SQLite.WriteTx(context.Background(), func(tx *sql.Tx) error { _, err := tx.Exec(q); return err }); err != nil {
				t.Fatal(err)
			}
		}
	}
	return postgres.New(h.Postgres), func(q string) {
		if _, err := h.Postgres.Pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

func signed(source, body string, headers ...string) *webhookv1.IngestRequest {
	req := delivery(body, headers...)
	req.Source = source
	return req
}

// errorInfo returns the ErrorInfo reason of err, "" for none.
func errorInfo(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == ErrorDomain {
			return ei.GetReason()
		}
	}
	return ""
}

func wantUnverified(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.Unauthenticated || errorInfo(err) != ErrorUnverified {
		t.Fatalf("%s: %v, want UNAUTHENTICATED with %s", what, err, ErrorUnverified)
	}
}

// Every scheme through Ingest: a valid delivery is stored, its repeat is a duplicate of it, a forged
// or stale one is refused (401) and stores nothing, and the refusal never makes the real one a
// duplicate.
func TestIngestEachScheme(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h, _ := startWithSources(t, d, map[string]string{})
		ctx := from(t, "198.51.100.7")
		body := `{"n":1}`
		ts, sig := standardSig("msg_1", verifyNow, body, whsec('n'))
		staleTS, staleSig := standardSig("msg_1", verifyNow.Add(-10*time.Minute), body, whsec('n'))
		zoho := zohoBody(1000000068001, "tok-1", 1700000000000, "1")
		for _, c := range []struct {
			name           string
			good, bad      *webhookv1.IngestRequest
			badReason      string
			repeatNewBytes *webhookv1.IngestRequest // another delivery that is still the same event, or nil
		}{
			{"hmac", signed("github", body, "X-Hub-Signature-256", githubSig(hmacSecretNew, body), "X-GitHub-Delivery", "d-1"),
				signed("github", body, "X-Hub-Signature-256", githubSig("forged-secret-0123456789", body), "X-GitHub-Delivery", "d-1"), reasonBadSignature,
				signed("github", body, "X-Hub-Signature-256", githubSig(hmacSecretOld, body), "X-GitHub-Delivery", "d-1")},
			{"stripe", signed("stripe", body, "Stripe-Signature", stripeSig(hmacSecretNew, body, verifyNow)),
				signed("stripe", body, "Stripe-Signature", stripeSig(hmacSecretNew, body, verifyNow.Add(-time.Hour))), reasonStaleTimestamp,
				signed("stripe", body, "Stripe-Signature", stripeSig(hmacSecretNew, body, verifyNow.Add(time.Minute)))},
			{"standard-webhooks", signed("svix", body, "Webhook-Id", "msg_1", "Webhook-Timestamp", ts, "Webhook-Signature", sig),
				signed("svix", body, "Webhook-Id", "msg_1", "Webhook-Timestamp", staleTS, "Webhook-Signature", staleSig), reasonStaleTimestamp, nil},
			{"zoho-crm", signed("zoho", zoho), signed("zoho", zohoBody(1000000068001, "tok-2", 1700000000000, "1")), reasonBadSignature, nil},
		} {
			before := testutil.ToFloat64(refusedTotal.WithLabelValues(c.bad.Source, c.badReason))
			_, err := h.client.Ingest(ctx, c.bad)
			wantUnverified(t, c.name+" forged", err)
			// The counter is the process's: tests running alongside may add to it too.
			if after := testutil.ToFloat64(refusedTotal.WithLabelValues(c.bad.Source, c.badReason)); after < before+1 {
				t.Errorf("%s: refusal not counted: %v -> %v", c.name, before, after)
			}
			first, err := h.client.Ingest(ctx, c.good)
			if err != nil || first.GetDuplicate() {
				t.Fatalf("%s: valid delivery after a refused one: %v %v (a refusal must not mark it seen)", c.name, first, err)
			}
			again, err := h.client.Ingest(ctx, c.good)
			if err != nil || !again.GetDuplicate() || again.GetEventId() != first.GetEventId() {
				t.Fatalf("%s: replay: %v %v", c.name, again, err)
			}
			if c.repeatNewBytes != nil {
				r, err := h.client.Ingest(ctx, c.repeatNewBytes)
				if err != nil || !r.GetDuplicate() || r.GetEventId() != first.GetEventId() {
					t.Fatalf("%s: the same event signed again: %v %v", c.name, r, err)
				}
			}
			list, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{Source: c.good.Source})
			if err != nil || len(list.GetEvents()) != 1 {
				t.Fatalf("%s: stored %v %v, want exactly the one valid event", c.name, list, err)
			}
			// Reads never show a Zoho channel token (it would let a reader forge notifications); the
			// other schemes' payloads come back exactly as sent.
			got, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: first.GetEventId()})
			if err != nil {
				t.Fatal(err)
			}
			payload := string(got.GetEvent().GetPayload())
			if c.good.Source == "zoho" {
				if strings.Contains(payload, "tok-1") || !strings.Contains(payload, `"token":"[REDACTED]"`) {
					t.Fatalf("%s: GetEvent shows %s, want the channel token redacted", c.name, payload)
				}
			} else if payload != string(c.good.GetBody()) {
				t.Fatalf("%s: GetEvent payload %q, want the body as sent", c.name, payload)
			}
		}
		// A server_time PostgreSQL could not store as text is left out of the key, not a 500.
		odd := `{"channel_id":1000000068001,"token":"tok-1","server_time":"1\u0000\ud800"}`
		if r, err := h.client.Ingest(ctx, signed("zoho", odd)); err != nil || r.GetDuplicate() {
			t.Fatalf("NUL in server_time: %v %v", r, err)
		}
		// Missing signature, malformed body, unknown source, too large.
		_, err := h.client.Ingest(ctx, signed("github", body))
		wantUnverified(t, "unsigned", err)
		if _, err := h.client.Ingest(ctx, signed("zoho", "module=Deals")); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("malformed Zoho body: %v", err)
		}
		if _, err := h.client.Ingest(ctx, signed("nobody", body)); status.Code(err) != codes.NotFound {
			t.Fatalf("unknown source: %v", err)
		}
		if _, err := h.client.Ingest(ctx, signed("small", strings.Repeat("x", 17))); status.Code(err) != codes.ResourceExhausted || errorInfo(err) != ErrorBodyTooLarge {
			t.Fatalf("over the source's body limit: %v", err)
		}
		if _, err := h.client.Ingest(ctx, signed("small", strings.Repeat("x", 16))); err != nil {
			t.Fatalf("at the source's body limit: %v", err)
		}
	})
}

// The source's own rate limit answers 429 with RetryInfo, and a refused delivery's retry is stored as
// new once the budget refills (never answered "duplicate").
func TestRefusedDeliveryRetryIsStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h, _ := startWithSources(t, d, map[string]string{})
		ctx := from(t, "198.51.100.7")
		for i := range 2 {
			if _, err := h.client.Ingest(ctx, signed("small", fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		_, err := h.client.Ingest(ctx, signed("small", "third"))
		if wait, ok := ratelimit.RetryAfter(err); status.Code(err) != codes.ResourceExhausted || !ok || wait <= 0 || errorInfo(err) != ErrorRateLimited {
			t.Fatalf("over the source's rate: %v (the gateway tells it from its own budget by the ErrorInfo)", err)
		}
		h.clock.advance(time.Second)
		r, err := h.client.Ingest(ctx, signed("small", "third"))
		if err != nil || r.GetDuplicate() {
			t.Fatalf("retry of the refused delivery: %v %v", r, err)
		}
	})
}

// Above WEBHOOK_MAX_QUEUE_SIZE undelivered events, Ingest answers UNAVAILABLE with RetryInfo (503 with
// Retry-After) and stores nothing; once the backlog drains it accepts again, and the refused delivery's
// retry is stored.
func TestBackpressure(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h, exec := startWithSources(t, d, map[string]string{"WEBHOOK_MAX_QUEUE_SIZE": "3"})
		// An event no subscription wants is stored as delivered: this one wants all, so they queue.
		storetest.WantEverything(t, h.srv.store)
		ctx := from(t, "198.51.100.7")
		for i := range 3 {
			if _, err := h.client.Ingest(ctx, signed("zoho", zohoBody(1000000068001, "tok-1", int64(i), "1"))); err != nil {
				t.Fatal(err)
			}
			h.clock.advance(backlogCheckInterval)
		}
		refused := signed("zoho", zohoBody(1000000068001, "tok-1", 99, "1"))
		_, err := h.client.Ingest(ctx, refused)
		if wait, ok := ratelimit.RetryAfter(err); status.Code(err) != codes.Unavailable || errorInfo(err) != ErrorBacklogFull || !ok || wait != backlogRetryAfter {
			t.Fatalf("full backlog: %v", err)
		}
		// Failed events are undelivered too; delivered and dead-lettered ones are not.
		exec(`UPDATE events SET status = 4 WHERE seq = 1`)
		exec(`UPDATE events SET status = 3 WHERE seq = 2`)
		// Within the cache interval the previous count stands.
		if _, err := h.client.Ingest(ctx, refused); status.Code(err) != codes.Unavailable {
			t.Fatalf("within the count's interval: %v", err)
		}
		h.clock.advance(backlogCheckInterval)
		r, err := h.client.Ingest(ctx, refused)
		if err != nil || r.GetDuplicate() {
			t.Fatalf("after the backlog drained: %v %v", r, err)
		}
		h.clock.advance(backlogCheckInterval)
		if _, err := h.client.Ingest(ctx, signed("zoho", zohoBody(1000000068001, "tok-1", 100, "1"))); status.Code(err) != codes.Unavailable {
			t.Fatalf("full again: %v", err)
		}
	})
}

// Concurrent deliveries of one event store it once; every caller gets the same id.
func TestConcurrentDuplicatesStoreOne(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h, _ := startWithSources(t, d, map[string]string{})
		body := `{"n":"same"}`
		ts, sig := standardSig("msg_c", verifyNow, body, whsec('o'))
		req := signed("svix", body, "Webhook-Id", "msg_c", "Webhook-Timestamp", ts, "Webhook-Signature", sig)
		const n = 16
		ids := make(chan string, n)
		var dups sync.WaitGroup
		var mu sync.Mutex
		stored := 0
		for range n {
			dups.Add(1)
			go func() {
				defer dups.Done()
				r, err := h.client.Ingest(from(t, "198.51.100.7"), req)
				if err != nil {
					t.Error(err)
					ids <- ""
					return
				}
				if !r.GetDuplicate() {
					mu.Lock()
					stored++
					mu.Unlock()
				}
				ids <- r.GetEventId()
			}()
		}
		dups.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if stored != 1 || len(seen) != 1 {
			t.Fatalf("%d answers said stored, ids %v; want one event", stored, seen)
		}
	})
}

// denialRecorder is a DenialSink that keeps what it is given.
type denialRecorder struct {
	mu sync.Mutex
	ds []auth.Denial
}

func (r *denialRecorder) Denied(d auth.Denial) { r.mu.Lock(); r.ds = append(r.ds, d); r.mu.Unlock() }

// Deliveries that fail verification reach the denial log (which sums them up per interval); limits and
// malformed requests do not. Nothing recorded holds a secret or the body.
func TestVerificationFailuresReachTheDenialLog(t *testing.T) {
	rec := &denialRecorder{}
	h, _ := startWithSources(t, db.SQLite, map[string]string{}, WithDenials(rec))
	ctx := from(t, "203.0.113.9")
	body := `{"secret-body":"x"}`
	h.client.Ingest(ctx, signed("github", body, "X-Hub-Signature-256", githubSig("forged-secret-0123456789", body)))
	h.client.Ingest(ctx, signed("zoho", zohoBody(1000000068001, "wrong-token", 1, "1")))
	h.client.Ingest(ctx, signed("zoho", "not json"))
	h.client.Ingest(ctx, signed("nobody", body))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.ds) != 2 {
		t.Fatalf("denials %+v, want the two failed verifications", rec.ds)
	}
	for i, want := range []string{"webhook_bad_signature", "webhook_bad_signature"} {
		d := rec.ds[i]
		if string(d.Reason) != want || d.Peer != "203.0.113.9" || d.Method != webhookv1.WebhookService_Ingest_FullMethodName || d.Known {
			t.Errorf("denial %d: %+v", i, d)
		}
		if s := fmt.Sprintf("%+v", d); strings.Contains(s, "secret") || strings.Contains(s, "token") {
			t.Errorf("denial holds delivery data: %s", s)
		}
	}
	if rec.ds[0].Actor != "webhook-source:github" || rec.ds[1].Actor != "webhook-source:zoho" {
		t.Errorf("actors %q %q", rec.ds[0].Actor, rec.ds[1].Actor)
	}
}

// Refusals of names that are not configured share one label, however many names a sender tries.
func TestRefusalLabelsAreBounded(t *testing.T) {
	h, _ := startWithSources(t, db.SQLite, map[string]string{})
	before := testutil.CollectAndCount(refusedTotal)
	for i := range 50 {
		h.client.Ingest(from(t, "203.0.113.9"), signed(fmt.Sprintf("made-up-%d", i), "x"))
	}
	if after := testutil.CollectAndCount(refusedTotal); after > before+1 {
		t.Fatalf("series %d -> %d after 50 unknown names", before, after)
	}
}
