package db_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/tracing"
)

// Store calls under a recording span are its child spans naming the database system and the operation,
// never the arguments: on SQLite one per transaction and one per statement outside a transaction, on
// PostgreSQL one per statement. Without a recording span none is made.
func TestStoreCallsAreChildSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	previous := tracing.Use(tp)
	t.Cleanup(func() { tracing.Use(previous) })
	const secret = "s3cret-argument"
	for _, c := range []struct {
		dialect db.Dialect
		system  string
		run     func(ctx context.Context, h *db.Handle) error
		want    []string
	}{
		{db.SQLite, "sqlite", func(ctx context.Context, h *db.Handle) error {
			var s string
			if err := h.SQLite.Read.QueryRowContext(ctx, "SELECT ?", secret).Scan(&s); err != nil {
				return err
			}
			if _, err := h.SQLite.Write.ExecContext(ctx, "SELECT length(?)", secret); err != nil {
				return err
			}
			// A read kept prepared (the first run outside the span prepares it) has a span per run.
			for range 2 {
				if _, err := db.SQLiteQueryAll(ctx, h.SQLite, "SELECT $1", []any{secret}, func(r db.Scanner) (string, error) {
					var s string
					return s, r.Scan(&s)
				}); err != nil {
					return err
				}
			}
			return h.SQLite.WriteTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "SELECT ?", secret)
				return err
			})
		}, []string{"sqlite SELECT", "sqlite SELECT", "sqlite SELECT", "sqlite SELECT", "sqlite TRANSACTION"}},
		{db.Postgres, "postgresql", func(ctx context.Context, h *db.Handle) error {
			var s string
			if err := h.Postgres.Pool.QueryRow(ctx, "SELECT $1::text", secret).Scan(&s); err != nil {
				return err
			}
			return h.Postgres.Tx(ctx, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "SELECT $1::text", secret)
				return err
			})
		}, []string{"postgresql BEGIN", "postgresql COMMIT", "postgresql SELECT", "postgresql SELECT"}},
	} {
		t.Run(c.system, func(t *testing.T) {
			h := dbtest.Open(t, c.dialect, "token")
			before := len(rec.Ended())
			if err := c.run(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			if n := len(rec.Ended()) - before; n != 0 {
				t.Fatalf("%d spans without a recording parent", n)
			}
			ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
			if err := c.run(ctx, h); err != nil {
				t.Fatal(err)
			}
			parent.End()
			var names []string
			for _, s := range rec.Ended()[before:] {
				if s.Parent().SpanID() != parent.SpanContext().SpanID() {
					continue
				}
				names = append(names, s.Name())
				attrs := map[string]string{}
				for _, kv := range s.Attributes() {
					attrs[string(kv.Key)] = kv.Value.Emit()
					if strings.Contains(kv.Value.Emit(), secret) {
						t.Errorf("span %s holds an argument: %v", s.Name(), kv)
					}
				}
				if attrs["db.system"] != c.system || attrs["db.operation.name"] == "" {
					t.Errorf("span %s attributes %v", s.Name(), attrs)
				}
			}
			slicesSort(names)
			if strings.Join(names, ",") != strings.Join(c.want, ",") {
				t.Fatalf("store spans %v, want %v", names, c.want)
			}
		})
	}
}

func slicesSort(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}
