package db

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sergas/core/internal/errs"
)

// The reviewer's P2: when PostgreSQL dies between requests the pool holds no connection and Acquire
// has to open one; that failure is an outage (Down), so that health turns NOT_SERVING on the first
// request, not only after the next periodic ping.
func TestAcquireFromAnUnreachableServerIsAnOutage(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close() // nothing listens there now
	pool, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p := &PostgresDB{Pool: pool, poolTimeout: 5 * time.Second}
	_, err = p.Acquire(context.Background())
	if errs.KindOf(err) != errs.KindUnavailable || !Down(err) {
		t.Fatalf("acquire from a dead server: %v (kind %v, down %v), want an Unavailable outage", err, errs.KindOf(err), Down(err))
	}
	if err := p.Ping(context.Background()); !Down(err) {
		t.Fatalf("ping of a dead server: %v is not an outage", err)
	}
}
