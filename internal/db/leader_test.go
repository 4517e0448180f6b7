package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
)

// Replicas of one service share a key per job; another service's job of the same name does not block it.
func TestLockKeyPerSchemaAndJob(t *testing.T) {
	a, b, c := db.LockKey("audit", "retention"), db.LockKey("webhook", "retention"), db.LockKey("audit", "checkpoints")
	if a != db.LockKey("audit", "retention") || a == b || a == c {
		t.Fatalf("keys %d %d %d", a, b, c)
	}
}

// A follower waiting for a held lock gives up when its context ends, and a release frees the job at once
// for the next candidate.
func TestFollowerStopsOnCancelAndReleaseHandsOver(t *testing.T) {
	cfg := dbtest.Config(t, db.Postgres)
	ctx := context.Background()
	pg, err := db.OpenPostgres(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	e := db.NewPostgresElector(pg, nil)
	e.Retry, e.Check, e.CheckTimeout = 20*time.Millisecond, 20*time.Millisecond, 200*time.Millisecond
	lead, release, err := e.Lead(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{}, 100)
	e.OnTry = func(_ string, won bool) {
		if !won {
			lost <- struct{}{}
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() {
		_, _, err := e.Lead(fctx, "job")
		followed <- err
	}()
	select { // the precondition: the follower really tried and lost
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the follower never tried")
	}
	cancel()
	select {
	case err := <-followed:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled follower: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled follower kept waiting")
	}
	if lead.Err() != nil {
		t.Fatal("the leader lost its context while a follower tried")
	}
	release()
	if !errors.Is(lead.Err(), context.Canceled) {
		t.Fatalf("after release the leader's context is %v", lead.Err())
	}
	e.OnTry = nil
	next, release2, err := e.Lead(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	defer release2()
	if next.Err() != nil {
		t.Fatal("the next leader's context is already done")
	}
}
