package db

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sergas/core/internal/tracing"
)

// Store calls appear in traces as client spans, children of the request or job that made them: on
// PostgreSQL one span per statement, batch or copy (pgx's tracer hooks, which every connection of the
// pool runs, the database/sql adapter's included); on SQLite one span per transaction and one per
// statement run outside a transaction (a wrapper around the driver's connections, sqlite_trace.go).
// A span names the database system and the operation (the statement's first keyword), never the
// statement's arguments, which hold tokens and secrets. Spans are only made under a recording span: with
// exporting off, or a trace not sampled, a statement costs one check.

const tracerName = "github.com/sergas/core/internal/db"

var clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}

// startStoreSpan starts a span named "<system> <operation>" when ctx's span records; ok is false
// otherwise.
func startStoreSpan(tracer trace.Tracer, ctx context.Context, system, op string) (context.Context, trace.Span, bool) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil, false
	}
	ctx, span := tracer.Start(ctx, system+" "+op, clientSpan...)
	span.SetAttributes(attribute.String("db.system", system), attribute.String("db.system.name", system),
		attribute.String("db.operation.name", op))
	return ctx, span, true
}

// endStoreSpan records a failure (its domain kind, never the driver's message) and ends span.
func endStoreSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(otelcodes.Error, "database error")
	}
	span.End()
}

// operation is a statement's first keyword, upper case ("SELECT", "INSERT", "BEGIN"), or "OTHER".
func operation(sql string) string {
	sql = strings.TrimLeft(sql, " \t\r\n(")
	end := 0
	for end < len(sql) && end < 16 && (sql[end]|0x20 >= 'a' && sql[end]|0x20 <= 'z') {
		end++
	}
	if end == 0 {
		return "OTHER"
	}
	return strings.ToUpper(sql[:end])
}

// pgTracer makes the spans of a PostgreSQL pool's statements, batches and copies.
type pgTracer struct{ tracer trace.Tracer }

func newPGTracer() *pgTracer { return &pgTracer{tracer: tracing.Tracer(tracerName)} }

// pgSpanKey marks the span a Trace*Start made, so that the matching End never ends the caller's span.
type pgSpanKey struct{}

// start starts the span of op, or of sql's operation when op is "".
func (t *pgTracer) start(ctx context.Context, op, sql string) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	if op == "" {
		op = operation(sql)
	}
	ctx, span, ok := startStoreSpan(t.tracer, ctx, "postgresql", op)
	if !ok {
		return ctx
	}
	return context.WithValue(ctx, pgSpanKey{}, span)
}

func (t *pgTracer) end(ctx context.Context, err error) {
	if span, ok := ctx.Value(pgSpanKey{}).(trace.Span); ok {
		endStoreSpan(span, err)
	}
}

func (t *pgTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, "", data.SQL)
}

func (t *pgTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	t.end(ctx, data.Err)
}

func (t *pgTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return t.start(ctx, "BATCH", "")
}

func (t *pgTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t *pgTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	t.end(ctx, data.Err)
}

func (t *pgTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return t.start(ctx, "COPY", "")
}

func (t *pgTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	t.end(ctx, data.Err)
}

var (
	_ pgx.QueryTracer    = (*pgTracer)(nil)
	_ pgx.BatchTracer    = (*pgTracer)(nil)
	_ pgx.CopyFromTracer = (*pgTracer)(nil)
)
