// Package storetest is the token store's conformance suite. Every backend's tests call Run, so that
// SQLite and PostgreSQL behave the same.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/token/store"
)

// Run runs the suite; newStore returns an empty, migrated store for one subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	for name, fn := range map[string]func(*testing.T, store.Store){
		"PutGet":                     testPutGet,
		"ReplaceKeepsCreateTime":     testReplace,
		"NotFound":                   testNotFound,
		"ListPaging":                 testList,
		"Delete":                     testDelete,
		"LeaseIsExclusive":           testLeaseExclusive,
		"LeaseRespectsDueAndBackoff": testLeaseConditions,
		"RefreshSuccess":             testRefreshSuccess,
		"RefreshFailureKeepsToken":   testRefreshFailure,
		"LostLeaseConflicts":         testLostLease,
		"EventsAndOutbox":            testEventsAndOutbox,
		"Due":                        testDue,
		"Reseal":                     testReseal,
		"OutboxClaims":               testOutboxClaims,
		"OutboxClaimsAreExclusive":   testOutboxClaimsAreExclusive,
	} {
		t.Run(name, func(t *testing.T) { t.Parallel(); fn(t, newStore(t)) })
	}
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Conn returns a connection ready to put, expiring in expiresIn.
func Conn(provider, id string, at time.Time, expiresIn time.Duration) *store.Connection {
	return &store.Connection{
		Provider: provider, ConnectionID: id, KeyID: "k1",
		AccessToken: []byte("sealed-at-" + id), RefreshToken: []byte("sealed-rt-" + id), TokenType: "Bearer",
		ExpireTime: at.Add(expiresIn), Scopes: []string{"ZohoCRM.modules.ALL"}, APIDomain: "https://www.zohoapis.eu",
		Status: store.StatusActive, CreateTime: at, UpdateTime: at,
	}
}

func key(c *store.Connection) store.Key {
	return store.Key{Provider: c.Provider, ConnectionID: c.ConnectionID}
}

func put(t *testing.T, s store.Store, c *store.Connection) *store.Connection {
	t.Helper()
	out, err := s.ConnectionPut(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testPutGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := Conn("zoho", "org-1", now(), time.Hour)
	in.ClientID, in.ClientSecret = "client-1", []byte("sealed-secret")
	stored := put(t, s, in)
	got, err := s.ConnectionGet(ctx, key(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("got %+v\nwant %+v", got, stored)
	}
	lean, err := s.AccessTokenGet(ctx, key(in))
	if err != nil || string(lean.AccessToken) != "sealed-at-org-1" || lean.KeyID != "k1" || lean.RefreshToken == nil ||
		!lean.ExpireTime.Equal(in.ExpireTime) || lean.APIDomain != in.APIDomain || lean.Status != store.StatusActive ||
		lean.TokenType != "Bearer" || lean.Version != 1 {
		t.Fatalf("lean read %+v %v", lean, err)
	}
	if string(got.AccessToken) != "sealed-at-org-1" || string(got.ClientSecret) != "sealed-secret" || got.Version != 1 ||
		!got.CreateTime.Equal(in.CreateTime) || !got.ExpireTime.Equal(in.ExpireTime) || got.Status != store.StatusActive {
		t.Fatalf("stored %+v", got)
	}
	bare := Conn("zoho", "org-2", now(), time.Hour)
	bare.RefreshToken, bare.Scopes = nil, nil
	put(t, s, bare)
	got, _ = s.ConnectionGet(ctx, key(bare))
	if got.RefreshToken != nil || got.ClientSecret != nil || len(got.Scopes) != 0 {
		t.Fatalf("empty values came back as %+v", got)
	}
	if lean, err := s.AccessTokenGet(ctx, key(bare)); err != nil || lean.RefreshToken != nil {
		t.Fatalf("lean read without refresh token: %+v %v", lean, err)
	}
	if _, err := s.AccessTokenGet(ctx, store.Key{Provider: "zoho", ConnectionID: "missing"}); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("lean read of a missing connection: %v", err)
	}
}

func testReplace(t *testing.T, s store.Store) {
	first := now().Add(-time.Hour)
	put(t, s, Conn("zoho", "org-1", first, time.Hour))
	second := Conn("zoho", "org-1", now(), time.Hour)
	second.AccessToken = []byte("new")
	stored := put(t, s, second)
	if !stored.CreateTime.Equal(first) || string(stored.AccessToken) != "new" || stored.Version != 2 {
		t.Fatalf("replace: %+v", stored)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := store.Key{Provider: "zoho", ConnectionID: "missing"}
	if _, err := s.ConnectionGet(ctx, k); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
	if err := s.ConnectionDelete(ctx, k, nil, nil); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("delete: %v", err)
	}
	if _, ok, err := s.LeaseAcquire(ctx, store.LeaseParams{Key: k, Owner: "a", Now: now(), Until: now().Add(time.Second)}); ok || !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("lease: %v %v", ok, err)
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []string
	for _, p := range []string{"generic", "zoho"} {
		for i := range 5 {
			id := fmt.Sprintf("c%02d", i)
			put(t, s, Conn(p, id, now(), time.Hour))
			want = append(want, p+"/"+id)
		}
	}
	var got []string
	params := store.ConnectionListParams{Limit: 3}
	for pages := 0; pages < 10; pages++ {
		page, err := s.ConnectionList(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.Provider+"/"+c.ConnectionID)
		}
		if len(page) < params.Limit {
			break
		}
		params.AfterProvider, params.AfterConnectionID = page[len(page)-1].Provider, page[len(page)-1].ConnectionID
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listed %v\nwant %v", got, want)
	}
	zoho, err := s.ConnectionList(ctx, store.ConnectionListParams{Provider: "zoho", Limit: 100})
	if err != nil || len(zoho) != 5 {
		t.Fatalf("filter: %d %v", len(zoho), err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := put(t, s, Conn("zoho", "org-1", now(), time.Hour))
	revoked := &store.RefreshEvent{Time: now(), Outcome: store.OutcomeRevoked, PreviousExpireTime: c.ExpireTime, Replica: "me"}
	if err := s.ConnectionDelete(ctx, key(c), revoked, []store.OutboxEntry{{IdempotencyKey: "del-1", Payload: []byte("x"), CreateTime: now()}}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.RefreshEventList(ctx, key(c), 0, 10); len(evs) != 1 || evs[0].Outcome != store.OutcomeRevoked {
		t.Fatalf("history after revoke: %+v", evs)
	}
	if _, err := s.ConnectionGet(ctx, key(c)); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if out, _ := s.OutboxList(ctx, 10); len(out) != 1 || out[0].IdempotencyKey != "del-1" {
		t.Fatalf("outbox after delete: %+v", out)
	}
}

func lease(owner string, c *store.Connection, at time.Time) store.LeaseParams {
	return store.LeaseParams{Key: key(c), Owner: owner, Now: at, Until: at.Add(30 * time.Second), DueBefore: at.Add(5 * time.Minute)}
}

func testLeaseExclusive(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := put(t, s, Conn("zoho", "org-1", now(), time.Minute)) // due: expires within the 5 minute margin
	const n = 12
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.LeaseAcquire(ctx, lease(fmt.Sprint("owner-", i), c, now()))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d callers hold the lease, want 1", wins)
	}
	// An expired lease can be taken over.
	later := now().Add(31 * time.Second)
	if _, ok, err := s.LeaseAcquire(ctx, lease("late", c, later)); !ok || err != nil {
		t.Fatalf("expired lease not taken over: %v %v", ok, err)
	}
}

func testLeaseConditions(t *testing.T, s store.Store) {
	ctx := context.Background()
	fresh := put(t, s, Conn("zoho", "fresh", now(), time.Hour))
	if _, ok, _ := s.LeaseAcquire(ctx, lease("a", fresh, now())); ok {
		t.Fatal("leased a token that is not due")
	}
	forced := lease("a", fresh, now())
	forced.DueBefore = time.Time{}
	if _, ok, _ := s.LeaseAcquire(ctx, forced); !ok {
		t.Fatal("forced lease refused")
	}
	// After a failure with backoff, nobody leases until next_refresh_time.
	due := put(t, s, Conn("zoho", "due", now(), time.Minute))
	at := now()
	if _, ok, _ := s.LeaseAcquire(ctx, lease("a", due, at)); !ok {
		t.Fatal("due connection not leased")
	}
	if _, err := s.RefreshFinish(ctx, store.RefreshResult{Key: key(due), Owner: "a", Now: at, ErrorClass: "transient",
		Status: store.StatusActive, NextRefreshTime: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.LeaseAcquire(ctx, lease("b", due, at.Add(time.Second))); ok {
		t.Fatal("leased during backoff")
	}
	if _, ok, _ := s.LeaseAcquire(ctx, lease("b", due, at.Add(61*time.Second))); !ok {
		t.Fatal("not leased after backoff")
	}
}

func testRefreshSuccess(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := put(t, s, Conn("zoho", "org-1", now(), time.Minute))
	at := now()
	if _, ok, _ := s.LeaseAcquire(ctx, lease("me", c, at)); !ok {
		t.Fatal("no lease")
	}
	got, err := s.RefreshFinish(ctx, store.RefreshResult{Key: key(c), Owner: "me", Now: at, Success: true, KeyID: "k2",
		AccessToken: []byte("sealed-new"), TokenType: "Bearer", ExpireTime: at.Add(time.Hour),
		Event: &store.RefreshEvent{Time: at, Outcome: store.OutcomeSuccess, PreviousExpireTime: c.ExpireTime, NewExpireTime: at.Add(time.Hour), Replica: "me"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.AccessToken) != "sealed-new" || string(got.RefreshToken) != "sealed-rt-org-1" || got.KeyID != "k2" ||
		got.LeaseOwner != "" || got.LastRefreshOutcome != store.OutcomeSuccess || !got.LastRefreshTime.Equal(at) ||
		got.APIDomain != c.APIDomain || !reflect.DeepEqual(got.Scopes, c.Scopes) || got.Version != c.Version+1 {
		t.Fatalf("after refresh: %+v", got)
	}
	// A rotated refresh token is stored with the access token.
	if _, ok, _ := s.LeaseAcquire(ctx, store.LeaseParams{Key: key(c), Owner: "me", Now: at, Until: at.Add(time.Minute)}); !ok {
		t.Fatal("no forced lease")
	}
	got, err = s.RefreshFinish(ctx, store.RefreshResult{Key: key(c), Owner: "me", Now: at, Success: true, KeyID: "k2",
		AccessToken: []byte("sealed-newer"), RefreshToken: []byte("sealed-rotated"), TokenType: "Bearer",
		ExpireTime: at.Add(time.Hour), APIDomain: "https://www.zohoapis.com", Scopes: []string{"a", "b"}})
	if err != nil || string(got.RefreshToken) != "sealed-rotated" || got.APIDomain != "https://www.zohoapis.com" || len(got.Scopes) != 2 {
		t.Fatalf("rotation: %+v %v", got, err)
	}
}

func testRefreshFailure(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := put(t, s, Conn("zoho", "org-1", now(), time.Minute))
	at := now()
	s.LeaseAcquire(ctx, lease("me", c, at))
	got, err := s.RefreshFinish(ctx, store.RefreshResult{Key: key(c), Owner: "me", Now: at, ErrorClass: "invalid_grant",
		Status: store.StatusNeedsReauthorization,
		Event:  &store.RefreshEvent{Time: at, Outcome: store.OutcomeFailure, PreviousExpireTime: c.ExpireTime, ErrorClass: "invalid_grant", Replica: "me"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.AccessToken) != string(c.AccessToken) || string(got.RefreshToken) != string(c.RefreshToken) ||
		got.Status != store.StatusNeedsReauthorization || got.LastRefreshError != "invalid_grant" ||
		got.LastRefreshOutcome != store.OutcomeFailure || got.RefreshFailures != 1 || got.LeaseOwner != "" {
		t.Fatalf("after failure: %+v", got)
	}
	if _, ok, _ := s.LeaseAcquire(ctx, lease("me", c, now())); ok {
		t.Fatal("leased a connection that needs re-authorisation")
	}
}

func testLostLease(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := put(t, s, Conn("zoho", "org-1", now(), time.Minute))
	at := now()
	s.LeaseAcquire(ctx, lease("first", c, at))
	s.LeaseAcquire(ctx, lease("second", c, at.Add(31*time.Second))) // first's lease expired
	_, err := s.RefreshFinish(ctx, store.RefreshResult{Key: key(c), Owner: "first", Now: at, Success: true, KeyID: "k1",
		AccessToken: []byte("late"), TokenType: "Bearer", ExpireTime: at.Add(time.Hour)})
	if !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("finish without the lease: %v", err)
	}
}

func testEventsAndOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := put(t, s, Conn("zoho", "org-1", now(), time.Minute))
	base := now().Add(-time.Hour)
	for i := range 5 {
		at := base.Add(time.Duration(i) * 10 * time.Minute)
		s.LeaseAcquire(ctx, store.LeaseParams{Key: key(c), Owner: "me", Now: at, Until: at.Add(time.Minute)})
		_, err := s.RefreshFinish(ctx, store.RefreshResult{Key: key(c), Owner: "me", Now: at, Success: true, KeyID: "k1",
			AccessToken: []byte("t"), TokenType: "Bearer", ExpireTime: at.Add(time.Hour),
			Event:  &store.RefreshEvent{Time: at, Outcome: store.OutcomeSuccess, PreviousExpireTime: at, NewExpireTime: at.Add(time.Hour), Rotated: i == 2, Replica: "me"},
			Outbox: []store.OutboxEntry{{IdempotencyKey: fmt.Sprint("ev-", i), Payload: []byte{byte(i)}, CreateTime: at}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.RefreshEventList(ctx, key(c), 0, 3)
	if err != nil || len(evs) != 3 || !evs[0].Time.Equal(base.Add(40*time.Minute)) || evs[0].ID <= evs[1].ID || !evs[2].Rotated {
		t.Fatalf("events page 1: %+v %v", evs, err)
	}
	more, _ := s.RefreshEventList(ctx, key(c), evs[2].ID, 10)
	if len(more) != 2 {
		t.Fatalf("events page 2: %d", len(more))
	}
	n, oldest, err := s.RefreshEventCount(ctx, key(c), base.Add(15*time.Minute))
	if err != nil || n != 3 || !oldest.Equal(base.Add(20*time.Minute)) {
		t.Fatalf("count since: %d %v %v", n, oldest, err)
	}
	out, _ := s.OutboxList(ctx, 3)
	if len(out) != 3 || out[0].IdempotencyKey != "ev-0" || out[2].Payload[0] != 2 {
		t.Fatalf("outbox: %+v", out)
	}
	if err := s.OutboxDelete(ctx, []int64{out[0].ID, out[1].ID}); err != nil {
		t.Fatal(err)
	}
	if rest, _ := s.OutboxList(ctx, 10); len(rest) != 3 || rest[0].IdempotencyKey != "ev-2" {
		t.Fatalf("outbox after delete: %+v", rest)
	}
}

func testDue(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := now()
	put(t, s, Conn("zoho", "later", at, 2*time.Hour))
	put(t, s, Conn("zoho", "soon", at, 2*time.Minute))
	noRefresh := Conn("zoho", "no-refresh", at, time.Minute)
	noRefresh.RefreshToken = nil
	put(t, s, noRefresh)
	keys, err := s.ConnectionsDue(ctx, at.Add(10*time.Minute), at, 10)
	if err != nil || len(keys) != 1 || keys[0].ConnectionID != "soon" {
		t.Fatalf("due: %v %v", keys, err)
	}
}

func testReseal(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := put(t, s, Conn("zoho", "a", now(), time.Hour))
	put(t, s, Conn("zoho", "b", now(), time.Hour))
	ids, _ := s.KeyIDs(ctx)
	if ids["k1"] != 2 {
		t.Fatalf("key ids %v", ids)
	}
	old, _ := s.ConnectionsNotSealedWith(ctx, "k2", 10)
	if len(old) != 2 {
		t.Fatalf("%d rows under old keys", len(old))
	}
	stale := *old[0]
	// A concurrent write bumps the version: the reseal of what was read must not overwrite it.
	changed := Conn("zoho", "a", now(), time.Hour)
	changed.AccessToken = []byte("written-meanwhile")
	put(t, s, changed)
	stale.KeyID, stale.AccessToken = "k2", []byte("resealed")
	if ok, err := s.ConnectionReseal(ctx, &stale); ok || err != nil {
		t.Fatalf("stale reseal applied: %v %v", ok, err)
	}
	fresh, _ := s.ConnectionGet(ctx, key(a))
	fresh.KeyID, fresh.AccessToken = "k2", []byte("resealed")
	if ok, err := s.ConnectionReseal(ctx, fresh); !ok || err != nil {
		t.Fatalf("reseal: %v %v", ok, err)
	}
	ids, _ = s.KeyIDs(ctx)
	if ids["k1"] != 1 || ids["k2"] != 1 {
		t.Fatalf("key ids after reseal %v", ids)
	}
}
