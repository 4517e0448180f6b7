package sergasctl

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	auditstore "github.com/sergas/core/services/audit/store"
	tokenstore "github.com/sergas/core/services/token/store"
	webhookstore "github.com/sergas/core/services/webhook/store"
)

// benchOp is one row of the original guide's table, as measured here.
type benchOp struct {
	Key  string `json:"key"`
	Name string `json:"operation"`
	// Here says what the operation is in Sergas Core, for the output and the README.
	Here string `json:"here"`
	// Original is the original guide's published figure in ms, by backend.
	Original map[db.Dialect]float64 `json:"-"`
}

// benchOps are the original guide's rows, in its order.
var benchOps = []benchOp{
	{Key: "simple_select", Name: "simple select", Original: map[db.Dialect]float64{db.SQLite: 0.08, db.Postgres: 0.12},
		Here: "audit store EventGet: one event by its id (a unique-index read of one row) on the store's read pool"},
	{Key: "token_lookup", Name: "token lookup", Original: map[db.Dialect]float64{db.SQLite: 0.15, db.Postgres: 0.23},
		Here: "token store AccessTokenGet: a connection's sealed access token by its primary key (provider, connection id), the read GetAccessToken makes; not unsealed (under 1 µs)"},
	{Key: "audit_insert", Name: "audit insert", Original: map[db.Dialect]float64{db.SQLite: 0.45, db.Postgres: 0.38},
		Here: "audit store EventAppend: one event hashed onto the chain head (locked), inserted and the head moved, committed"},
	{Key: "webhook_batch_10", Name: "webhook batch of 10", Original: map[db.Dialect]float64{db.SQLite: 8.2, db.Postgres: 2.3},
		Here: "webhook store EventInsertBatch: 10 events of 1 KiB (dedupe-checked) and their pending deliveries (one per matching subscription: the one to every event, and the one to Zoho Leads events for about 1 in 5; about 12 a batch), one transaction, committed"},
	{Key: "complex_query", Name: "complex query", Original: map[db.Dialect]float64{db.SQLite: 1.2, db.Postgres: 0.9},
		Here: "audit store EventList: actor and action equal to given values, occur_time in the 7 days before the bench started (the populated events cover 30), newest first, a page of at most 50 (the query ListEvents runs; about 15 rows a call with 10,000 events)"},
}

// benchAudit* shape the populated audit log: several actors and actions, so that a filtered list reads
// an index and filters, as on a real log.
var (
	benchActors  = 20
	benchActions = []string{"token.refresh", "token.create", "token.delete", "webhook.ingest", "webhook.ack", "login", "export", "config.change"}
	benchModules = []string{"Leads", "Deals", "Contacts", "Accounts"}
)

// benchSpan is how far back the populated events' times go.
const benchSpan = 30 * 24 * time.Hour

// benchData is one backend's scratch stores and what was put in them.
type benchData struct {
	backend   db.Dialect
	token     tokenstore.Store
	audit     auditstore.Store
	webhook   webhookstore.Store
	keys      []tokenstore.Key
	eventIDs  []string
	webhookN  int // webhook events stored so far, for unique dedupe keys
	now       time.Time
	payload   []byte
	populated benchPopulated
}

// benchPopulated counts the rows put in before measuring.
type benchPopulated struct {
	AuditEvents       int `json:"audit_events"`
	WebhookEvents     int `json:"webhook_events"`
	WebhookDeliveries int `json:"webhook_deliveries"`
	Subscriptions     int `json:"webhook_subscriptions"`
	TokenConnections  int `json:"token_connections"`
}

// newBenchData opens the services' stores on the scratch databases of s.
func newBenchData(s *scratchSet) *benchData {
	cn := func(service string) *conn {
		h := s.dbs[service].h
		return &conn{SQLite: h.SQLite, PG: h.Postgres}
	}
	// About 1 KiB of JSON, as a Zoho CRM notification.
	payload := `{"module":"Leads","operation":"update","ids":["5725767000000123001"],"affected_fields":["Lead_Status","Owner"],"server_time":1795704739000,"channel_id":"1000000068001","token":"` +
		strings.Repeat("x", 820) + `"}`
	return &benchData{backend: s.backend, token: tokenStore(cn("token")), audit: auditStore(cn("audit")), webhook: webhookStore(cn("webhook")),
		now: time.Now().UTC().Truncate(time.Microsecond), payload: []byte(payload)}
}

// benchPopulateBatch is how many rows one populating transaction stores.
const benchPopulateBatch = 500

// populate stores rows audit events, rows webhook events (two subscriptions) and rows/10 token
// connections (at least 10, at most 1000), counting them on p.
func (d *benchData) populate(ctx context.Context, rows int, p *progress) error {
	rng := rand.New(rand.NewPCG(1, 2)) // the same data on every run
	conns := min(max(rows/10, 10), 1000)
	for i := range conns {
		k := tokenstore.Key{Provider: "zoho", ConnectionID: fmt.Sprintf("bench-%05d", i)}
		now := d.now
		c := &tokenstore.Connection{Provider: k.Provider, ConnectionID: k.ConnectionID, KeyID: "bench",
			AccessToken: randomBytes(rng, 120), RefreshToken: randomBytes(rng, 120), TokenType: "Bearer",
			ExpireTime: now.Add(time.Hour), Scopes: []string{"ZohoCRM.modules.ALL"}, APIDomain: "https://www.zohoapis.eu",
			Status: tokenstore.StatusActive, CreateTime: now, UpdateTime: now}
		if _, err := d.token.ConnectionPut(ctx, c, nil); err != nil {
			return fmt.Errorf("token connection: %w", err)
		}
		d.keys = append(d.keys, k)
		p.Add(1)
	}
	d.populated.TokenConnections = conns

	for done := 0; done < rows; {
		n := min(benchPopulateBatch, rows-done)
		ps := make([]auditstore.Pending, n)
		for i := range ps {
			// Spread over benchSpan in order, as a log fills.
			at := d.now.Add(-benchSpan + benchSpan/time.Duration(rows)*time.Duration(done+i)) // divided first: 30 days × rows overflows
			e := d.auditEvent(rng, at)
			ps[i] = auditstore.Pending{Event: e}
			d.eventIDs = append(d.eventIDs, e.ID)
		}
		if _, err := d.audit.Append(ctx, ps); err != nil {
			return fmt.Errorf("audit events: %w", err)
		}
		done += n
		p.Add(int64(n))
	}
	d.populated.AuditEvents = rows

	now := d.now
	for i, sub := range []*webhookstore.Subscription{
		{Name: "bench-all"},
		{Name: "bench-zoho-leads", Filter: webhookstore.Filter{Sources: []string{"zoho"}, Modules: []string{"Leads"}}},
	} {
		sub.ID = uuid.Must(uuid.NewV7()).String()
		sub.Retry = webhookstore.RetryPolicy{MaxRetries: 5, BackoffBase: time.Second, BackoffCap: time.Hour}
		sub.LeaseDuration, sub.State, sub.Mode = 30*time.Second, webhookstore.SubscriptionActive, webhookstore.SubscriptionPull
		sub.CreateTime, sub.UpdateTime = now, now
		if err := d.webhook.SubscriptionCreate(ctx, sub); err != nil {
			return fmt.Errorf("webhook subscription: %w", err)
		}
		d.populated.Subscriptions = i + 1
	}
	for done := 0; done < rows; {
		n := min(benchPopulateBatch, rows-done)
		if err := d.webhookBatch(ctx, rng, n); err != nil {
			return fmt.Errorf("webhook events: %w", err)
		}
		done += n
		p.Add(int64(n))
	}
	d.populated.WebhookEvents = rows
	return nil
}

// analyse brings the planner's statistics up to date, as autovacuum and "sergasctl maintain" keep them
// on a running installation.
func analyse(ctx context.Context, s *scratchSet) error {
	for _, service := range serviceNames {
		h := s.dbs[service].h
		var err error
		if h.SQLite != nil {
			_, err = h.SQLite.Write.ExecContext(ctx, "ANALYZE")
		} else {
			err = analysePG(ctx, h.Postgres)
		}
		if err != nil {
			return fmt.Errorf("%s: ANALYZE: %w", service, err)
		}
	}
	return nil
}

// analysePG analyses the tables of the scratch schema only: a bare ANALYZE would visit every schema
// of the database, the services' included.
func analysePG(ctx context.Context, p *db.PostgresDB) error {
	rows, err := p.Pool.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1 ORDER BY 1 LIMIT $2`,
		p.Schema, maxTables)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		// The names come from format('%I'), quoted by the server.
		if _, err := p.Pool.Exec(ctx, "ANALYZE "+t); err != nil {
			return err
		}
	}
	return nil
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// auditEvent is an event as the audit service builds one from a request (request.go).
func (d *benchData) auditEvent(rng *rand.Rand, at time.Time) *auditstore.Event {
	at = at.UTC().Truncate(time.Microsecond)
	return &auditstore.Event{ID: uuid.Must(uuid.NewV7()).String(), OccurTime: at, RecordTime: at,
		Actor: fmt.Sprintf("user-%02d", rng.IntN(benchActors)), Action: benchActions[rng.IntN(len(benchActions))],
		Resource: fmt.Sprintf("zoho/Leads/%d", rng.IntN(5000)), Outcome: 1,
		Metadata: fmt.Sprintf(`{"ip":"10.0.%d.%d","reason":"bench"}`, rng.IntN(256), rng.IntN(256)), Principal: "sergasctl-bench",
		ActorType: 1, SessionID: fmt.Sprintf("s-%d", rng.IntN(1000)), RequestID: uuid.Must(uuid.NewV7()).String(), SourceService: "bench"}
}

// webhookBatch stores n new events in one EventInsertBatch.
func (d *benchData) webhookBatch(ctx context.Context, rng *rand.Rand, n int) error {
	es := make([]*webhookstore.Event, n)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range es {
		d.webhookN++
		source := "zoho"
		if d.webhookN%4 == 0 {
			source = "stripe"
		}
		es[i] = &webhookstore.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: source, DedupeKey: fmt.Sprintf("bench-%d", d.webhookN),
			Status: webhookstore.StatusPending, ContentType: "application/json", Payload: d.payload,
			Headers:     []webhookstore.Header{{Name: "Content-Type", Values: []string{"application/json"}}, {Name: "User-Agent", Values: []string{"Zoho-CRM-Notifications"}}},
			ReceiveTime: now, SenderAddress: "203.0.113.7",
			Normalised: webhookstore.Normalised{Module: benchModules[rng.IntN(len(benchModules))], Operation: "update",
				RecordIDs: []string{fmt.Sprint(5725767000000000000 + rng.Int64N(1e9))}, AffectedFields: []string{"Lead_Status"}}}
		if source == "stripe" {
			es[i].Normalised = webhookstore.Normalised{EventType: "invoice.paid"}
		}
		d.populated.WebhookDeliveries++ // the subscription to every event
		if source == "zoho" && es[i].Module == "Leads" {
			d.populated.WebhookDeliveries++
		}
	}
	out, err := d.webhook.EventInsertBatch(ctx, es)
	if err != nil {
		return err
	}
	for _, r := range out {
		if r.Duplicate {
			return fmt.Errorf("event %s stored as a duplicate", r.Event.ID)
		}
	}
	return nil
}

// call returns the function that performs op once on d and returns the rows it read or wrote; rng
// chooses what it reads.
func (d *benchData) call(op benchOp, rng *rand.Rand) func(ctx context.Context) (int, error) {
	switch op.Key {
	case "simple_select":
		return func(ctx context.Context) (int, error) {
			_, err := d.audit.EventGet(ctx, d.eventIDs[rng.IntN(len(d.eventIDs))])
			return 1, err
		}
	case "token_lookup":
		return func(ctx context.Context) (int, error) {
			_, err := d.token.AccessTokenGet(ctx, d.keys[rng.IntN(len(d.keys))])
			return 1, err
		}
	case "audit_insert":
		return func(ctx context.Context) (int, error) {
			_, _, err := d.audit.EventAppend(ctx, d.auditEvent(rng, time.Now()))
			return 1, err
		}
	case "webhook_batch_10":
		return func(ctx context.Context) (int, error) { return 10, d.webhookBatch(ctx, rng, 10) }
	case "complex_query":
		// The window ends when the bench started, so that the events audit insert adds while it runs
		// do not change the page: about 15 of the populated 10,000 events match a call.
		return func(ctx context.Context) (int, error) {
			es, err := d.audit.EventList(ctx, auditstore.EventListParams{
				Actor: fmt.Sprintf("user-%02d", rng.IntN(benchActors)), Action: benchActions[rng.IntN(len(benchActions))],
				Start: d.now.Add(-7 * 24 * time.Hour), End: d.now, Descending: true, Limit: 50})
			return len(es), err
		}
	}
	panic("unknown bench operation " + op.Key)
}
